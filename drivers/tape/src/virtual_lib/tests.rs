use super::*;

fn small(dir: &Path) -> VirtualLibrary {
    VirtualLibrary::create(
        dir,
        &VtlOptions {
            drives: 2,
            slots: 6,
            ie_slots: 2,
            capacity: 64 * 1024,
            early_warning: 16 * 1024,
            cartridges: 4,
            worm: 1,
            cleaning: 1,
            prefix: "CF".into(),
        },
    )
    .unwrap()
}

#[test]
fn create_lays_out_cartridges_in_slots() {
    let d = tempfile::tempdir().unwrap();
    let lib = small(d.path());
    let inv = lib.changer_handle().inventory().unwrap();
    let barcodes: Vec<_> = inv.slots.iter().map(|e| e.barcode.clone()).collect();
    assert_eq!(
        barcodes,
        vec![
            Some("CF0001L9".into()),
            Some("CF0002L9".into()),
            Some("CF0003L9".into()),
            Some("CF0004LZ".into()),
            Some("CLN001CU".into()),
            None
        ]
    );
    assert_eq!(inv.drives.len(), 2);
    assert_eq!(inv.ie_slots.len(), 2);
    assert!(inv.drives.iter().all(|e| !e.full));
    // A second create in the same place is refused.
    assert!(VirtualLibrary::create(d.path(), &VtlOptions::default()).is_err());
}

#[test]
fn blocks_filemarks_space_locate_and_end_of_data() {
    let d = tempfile::tempdir().unwrap();
    let lib = small(d.path());
    let mut ch = lib.changer_handle();
    ch.load_barcode("CF0001L9", 0).unwrap();
    let mut drv = lib.drive_handle(0).unwrap();
    assert_eq!(drv.write_block(b"one").unwrap(), Written::Ok);
    assert_eq!(drv.write_block(b"two!").unwrap(), Written::Ok);
    drv.write_filemarks(1).unwrap();
    drv.write_block(b"three").unwrap();
    drv.write_filemarks(1).unwrap();
    assert_eq!(drv.position().unwrap().block, 5);
    assert_eq!(drv.position().unwrap().file, 2);

    drv.rewind().unwrap();
    let mut buf = vec![0u8; 16];
    assert_eq!(drv.read_block(&mut buf).unwrap(), ReadOutcome::Block(3));
    assert_eq!(&buf[..3], b"one");
    drv.space(SpaceOver::Filemarks(1)).unwrap();
    assert_eq!(drv.read_block(&mut buf).unwrap(), ReadOutcome::Block(5));
    assert_eq!(drv.read_block(&mut buf).unwrap(), ReadOutcome::Filemark);
    assert_eq!(drv.read_block(&mut buf).unwrap(), ReadOutcome::EndOfData);
    // Backwards over a filemark ends before it.
    drv.space(SpaceOver::Filemarks(-1)).unwrap();
    assert_eq!(drv.position().unwrap().block, 4);
    drv.space(SpaceOver::Filemarks(-1)).unwrap();
    assert_eq!(drv.position().unwrap().block, 2);
    // Spacing blocks stops at a filemark.
    drv.locate(0).unwrap();
    let e = drv.space(SpaceOver::Blocks(3)).unwrap_err();
    assert!(matches!(e, Error::Sense { .. }), "{e}");
    assert_eq!(drv.position().unwrap().block, 2);
    // A buffer too small is an error, not a truncated read.
    drv.locate(1).unwrap();
    let e = drv.read_block(&mut buf[..2]).unwrap_err();
    assert!(matches!(e, Error::BlockTooLarge { len: 4, .. }), "{e}");
    // Locating past end of data is a blank check.
    assert!(matches!(drv.locate(9), Err(Error::BlankCheck { .. })));
    drv.space(SpaceOver::EndOfData).unwrap();
    assert_eq!(drv.position().unwrap().block, 5);

    // Writing mid-tape ends the data there, as on a real tape.
    drv.locate(1).unwrap();
    drv.write_block(b"new").unwrap();
    drv.rewind().unwrap();
    drv.read_block(&mut buf).unwrap();
    assert_eq!(drv.read_block(&mut buf).unwrap(), ReadOutcome::Block(3));
    assert_eq!(&buf[..3], b"new");
    assert_eq!(drv.read_block(&mut buf).unwrap(), ReadOutcome::EndOfData);
}

#[test]
fn early_warning_then_end_of_medium_writes_nothing() {
    let d = tempfile::tempdir().unwrap();
    let lib = small(d.path());
    lib.changer_handle().load_barcode("CF0002L9", 1).unwrap();
    let mut drv = lib.drive_handle(1).unwrap();
    let block = vec![7u8; 10 * 1024];
    // 64 KiB capacity, 16 KiB early-warning zone: 4 blocks of 10 KiB + headers
    // stay under 48 KiB, the 5th crosses it.
    for _ in 0..4 {
        assert_eq!(drv.write_block(&block).unwrap(), Written::Ok);
    }
    assert_eq!(drv.write_block(&block).unwrap(), Written::EarlyWarning);
    assert!(drv.status().unwrap().position.unwrap().eop);
    assert_eq!(drv.write_block(&block).unwrap(), Written::EarlyWarning);
    let before = drv.position().unwrap().block;
    assert!(matches!(
        drv.write_block(&block),
        Err(Error::EndOfMedium { .. })
    ));
    assert_eq!(
        drv.position().unwrap().block,
        before,
        "a block that did not fit is not recorded"
    );
    drv.rewind().unwrap();
    let mut buf = vec![0u8; 16 * 1024];
    let mut n = 0;
    while let ReadOutcome::Block(_) = drv.read_block(&mut buf).unwrap() {
        n += 1;
    }
    assert_eq!(n, 6);
}

#[test]
fn worm_refuses_overwrite_but_appends() {
    let d = tempfile::tempdir().unwrap();
    let lib = small(d.path());
    lib.changer_handle().load_barcode("CF0004LZ", 0).unwrap();
    let mut drv = lib.drive_handle(0).unwrap();
    assert!(drv.status().unwrap().worm);
    drv.write_block(b"label").unwrap();
    drv.write_filemarks(1).unwrap();
    drv.rewind().unwrap();
    let e = drv.write_block(b"again").unwrap_err();
    assert!(matches!(e, Error::WriteProtected { .. }), "{e}");
    assert!(e.to_string().contains("WORM"), "{e}");
    drv.space(SpaceOver::EndOfData).unwrap();
    drv.write_block(b"more").unwrap();
    drv.rewind().unwrap();
    let mut buf = [0u8; 8];
    assert_eq!(drv.read_block(&mut buf).unwrap(), ReadOutcome::Block(5));
    assert_eq!(&buf[..5], b"label");
}

#[test]
fn cleaning_cartridge_is_never_data() {
    let d = tempfile::tempdir().unwrap();
    let lib = small(d.path());
    lib.changer_handle().load_barcode("CLN001CU", 0).unwrap();
    let mut drv = lib.drive_handle(0).unwrap();
    let st = drv.status().unwrap();
    assert!(st.cleaning && !st.ready);
    assert!(matches!(drv.write_block(b"x"), Err(Error::NotReady { .. })));
    assert!(matches!(
        drv.read_block(&mut [0u8; 4]),
        Err(Error::NotReady { .. })
    ));
}

#[test]
fn changer_moves_import_export_and_refuses_nonsense() {
    let d = tempfile::tempdir().unwrap();
    let lib = small(d.path());
    let mut ch = lib.changer_handle();
    ch.load_barcode("CF0001L9", 0).unwrap();
    {
        let mut drv = lib.drive_handle(0).unwrap();
        assert_eq!(drv.status().unwrap().barcode.as_deref(), Some("CF0001L9"));
        // A loaded cartridge cannot be pulled out by the robot.
        let e = ch.move_medium(DRIVE_BASE, SLOT_BASE + 5).unwrap_err();
        assert!(e.to_string().contains("unload it first"), "{e}");
        drv.unload().unwrap();
        // The drive's lock keeps a second process (or handle) off it.
        assert!(matches!(lib.drive_handle(0), Err(Error::Busy { .. })));
    }
    ch.unload_drive(0).unwrap();
    let inv = ch.inventory().unwrap();
    assert_eq!(
        inv.slots[0].barcode.as_deref(),
        Some("CF0001L9"),
        "back to its source slot"
    );
    assert!(!inv.drives[0].full);

    // Export to a mail slot, take it out, bring it back.
    let ie = ch.export("CF0003L9").unwrap();
    assert_eq!(lib.take(ie).unwrap(), "CF0003L9");
    assert_eq!(lib.outside().unwrap(), vec!["CF0003L9".to_string()]);
    assert!(matches!(
        ch.load_barcode("CF0003L9", 0),
        Err(Error::CartridgeMissing { .. })
    ));
    let ie = lib.insert("CF0003L9", None).unwrap();
    let slot = ch.import(ie).unwrap();
    assert_eq!(
        ch.inventory().unwrap().slots[usize::from(slot)]
            .barcode
            .as_deref(),
        Some("CF0003L9")
    );

    // A brand-new cartridge.
    let spec = CartridgeSpec {
        capacity: 1 << 20,
        early_warning: 1 << 16,
        worm: false,
        cleaning: false,
        write_protected: false,
    };
    lib.insert("NEW001L9", Some(spec)).unwrap();
    assert!(
        lib.insert("NEW001L9", Some(spec)).is_err(),
        "duplicate barcode"
    );
    assert!(
        lib.insert("../evil", Some(spec)).is_err(),
        "hostile barcode"
    );
    assert!(
        lib.insert("GONE01L9", None).is_err(),
        "no such cartridge outside"
    );
    assert!(
        ch.move_medium(SLOT_BASE + 5, SLOT_BASE + 4).is_err(),
        "destination full"
    );
    assert!(
        ch.move_medium(0x7777, SLOT_BASE).is_err(),
        "no such element"
    );
}

#[test]
fn position_survives_reopening_and_state_is_validated() {
    let d = tempfile::tempdir().unwrap();
    let lib = small(d.path());
    lib.changer_handle().load_barcode("CF0001L9", 0).unwrap();
    {
        let mut drv = lib.drive_handle(0).unwrap();
        drv.write_block(b"a").unwrap();
        drv.write_block(b"b").unwrap();
    }
    let lib2 = VirtualLibrary::open(d.path()).unwrap();
    let mut drv = lib2.drive_handle(0).unwrap();
    assert_eq!(drv.position().unwrap().block, 2);
    drop(drv);

    // A torn record at the end (a crash mid-write) is not data.
    let cart = d.path().join("cartridges/CF0001L9");
    let mut f = OpenOptions::new().append(true).open(&cart).unwrap();
    f.write_all(&[0, 0, 0, 0, 0xff, 0, 0, 0, 1, 2]).unwrap();
    let mut drv = lib2.drive_handle(0).unwrap();
    drv.space(SpaceOver::EndOfData).unwrap();
    assert_eq!(drv.position().unwrap().block, 2);
    // Appending drops the torn bytes, so nothing stale follows the new record.
    drv.write_block(b"c").unwrap();
    drop(drv);
    let mut drv = lib2.drive_handle(0).unwrap();
    drv.space(SpaceOver::EndOfData).unwrap();
    assert_eq!(drv.position().unwrap().block, 3);
    assert_eq!(fs::metadata(&cart).unwrap().len(), 64 + 3 * 9);
    drop(drv);

    fs::write(d.path().join("library.json"), b"{not json").unwrap();
    let e = VirtualLibrary::open(d.path()).unwrap_err();
    assert!(e.to_string().contains("library.json"), "{e}");
}
