//! CSV import of the asset register, and asset and profile validation.

use coffer_types::api::{Asset, Criticality, Duration, Profile, Schedules};

use super::*;

const SAMPLE: &str = include_str!("../../../../docs/examples/asset-register.csv");

fn asset() -> Asset {
    Asset {
        name: "web-01".to_string(),
        owner: "web team".to_string(),
        criticality: Criticality::High,
        sources: vec!["/srv/www".to_string()],
        excludes: Vec::new(),
        rpo: Duration(4 * 3600),
        rto: Duration(2 * 3600),
        profile: Some("standard".to_string()),
    }
}

fn profile() -> Profile {
    Profile {
        name: "standard".to_string(),
        schedules: Schedules {
            full: Some("Sun 01:00".to_string()),
            differential: Some("Mon..Sat 01:00".to_string()),
            incremental: Some("*-*-* 00/4:00".to_string()),
        },
        retention: Default::default(),
        target: "default".to_string(),
        tape_pool: None,
        replicate_to: Vec::new(),
        replicate_schedule: None,
        retries: 2,
        retry_backoff: Duration(300),
        drill: None,
    }
}

fn import_err(csv: &str) -> String {
    parse_register_csv(csv).unwrap_err().to_string()
}

const HEADER: &str = "name,owner,criticality,sources,rpo,rto";

#[test]
fn the_sample_register_imports() {
    let assets = parse_register_csv(SAMPLE).unwrap();
    let names: Vec<&str> = assets.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(
        names,
        ["web-01", "db-01", "files-01", "mail-01", "build-02"]
    );
    assert_eq!(
        assets[0],
        Asset {
            name: "web-01".to_string(),
            owner: "Web team <web@example.org>".to_string(),
            criticality: Criticality::High,
            sources: vec!["/srv/www".to_string(), "/etc/nginx".to_string()],
            excludes: vec!["*.log".to_string(), "/srv/www/cache/**".to_string()],
            rpo: Duration(4 * 3600),
            rto: Duration(2 * 3600),
            profile: Some("standard".to_string()),
        }
    );
    assert_eq!(assets[1].criticality, Criticality::Critical);
    assert!(assets[1].excludes.is_empty());
    assert_eq!(assets[2].owner, "Finance, Controlling", "quoted field");
    assert_eq!(assets[4].rpo, Duration(7 * 86_400));
    assert_eq!(assets[4].profile, None, "empty profile is none");
    for a in &assets {
        validate_asset(a).unwrap();
    }
}

#[test]
fn columns_in_any_order_and_case_with_optional_ones_absent() {
    let csv = "RTO, Sources ,Name,rpo,Criticality,OWNER\n\
               1d,/srv/a ; /srv/b;,a-1,90m,LOW,ops\n";
    let assets = parse_register_csv(csv).unwrap();
    assert_eq!(assets.len(), 1);
    let a = &assets[0];
    assert_eq!(a.name, "a-1");
    assert_eq!(a.sources, ["/srv/a", "/srv/b"]);
    assert_eq!(a.rpo, Duration(5400));
    assert_eq!(a.rto, Duration(86_400));
    assert_eq!(a.criticality, Criticality::Low);
    assert_eq!((a.profile.as_deref(), a.excludes.len()), (None, 0));
}

#[test]
fn comments_blank_rows_bom_and_crlf_are_tolerated() {
    let csv = "\u{feff}# exported from the CMDB\r\n\
               name,owner,criticality,sources,rpo,rto,profile\r\n\
               \r\n\
               a,ops,high,/srv/a,1h,1h,standard\r\n\
               ,,,,,,\r\n\
               # retired: b,ops,low,/srv/b,1d,1d,\r\n\
               c,ops,low,/srv/c,1d,1d,\r\n";
    let names: Vec<String> = parse_register_csv(csv)
        .unwrap()
        .into_iter()
        .map(|a| a.name)
        .collect();
    assert_eq!(names, ["a", "c"]);
    // A header alone is an empty register.
    assert!(parse_register_csv(HEADER).unwrap().is_empty());
}

#[test]
fn field_errors_name_the_line_and_column() {
    for (rows, msg) in [
        (
            "a,ops,high,/srv/a,1h,1h\nb,ops,high,/srv/b,1h,1h\nc,ops,high,/srv/c,4x,1h",
            "line 4, column rpo: '4x' is not a duration (e.g. 90s, 15m, 4h, 1d, 2w, 1h30m)",
        ),
        (
            "a,ops,high,/srv/a,1h,",
            "line 2, column rto: is empty (e.g. 4h, 1d)",
        ),
        (
            "a,ops,urgent,/srv/a,1h,1h",
            "line 2, column criticality: 'urgent' is not a criticality (low, medium, high, critical)",
        ),
        (
            "a,ops,,/srv/a,1h,1h",
            "line 2, column criticality: is empty (low, medium, high, critical)",
        ),
        (
            "a,ops,high,srv/a,1h,1h",
            "line 2, column sources: 'srv/a' is not an absolute path (it must start with '/')",
        ),
        (
            "a,ops,high,,1h,1h",
            "line 2, column sources: none given: at least one absolute path",
        ),
        (
            "a,ops,high,/srv/a;relative,1h,1h",
            "line 2, column sources: 'relative' is not an absolute path (it must start with '/')",
        ),
        (
            "web 01,ops,high,/srv/a,1h,1h",
            "line 2, column name: ' ' is not allowed (letters, digits, '.', '_' and '-' only)",
        ),
        (
            "-x,ops,high,/srv/a,1h,1h",
            "line 2, column name: may not start with '-' or '.'",
        ),
        (",ops,high,/srv/a,1h,1h", "line 2, column name: is empty"),
        (
            "a,,high,/srv/a,1h,1h",
            "line 2, column owner: is empty: every asset needs someone accountable for it",
        ),
        (
            "a,ops,high,/srv/a,0s,1h",
            "line 2, column rpo: must be longer than 0s",
        ),
        (
            "a,ops,high,/srv/a,1h,1h\nb,ops,high,/srv/b,1h,1h\na,ops,low,/srv/c,1d,1d",
            "line 4: asset 'a' is already on line 2",
        ),
    ] {
        assert_eq!(import_err(&format!("{HEADER}\n{rows}\n")), msg, "{rows}");
    }
}

#[test]
fn header_errors() {
    assert_eq!(parse_register_csv(""), Err(ImportError::NoHeader));
    assert_eq!(
        parse_register_csv("# only a comment\n"),
        Err(ImportError::NoHeader)
    );
    assert_eq!(
        import_err("name,owner,criticality,sources,rpo\na,b,low,/x,1h\n"),
        "line 1: the header has no 'rto' column (required: name, owner, criticality, sources, rpo, rto)"
    );
    assert_eq!(
        import_err("name,owner,criticality,sources,rpo,rto,exclude\n"),
        "line 1: unknown column 'exclude' \
         (known: name, owner, criticality, sources, rpo, rto, profile, excludes)"
    );
    assert_eq!(
        import_err("name,owner,criticality,sources,rpo,rto,Name\n"),
        "line 1: the header names column 'name' twice"
    );
    assert_eq!(
        import_err("# comment\nname,owner,criticality,sources,rpo\n"),
        "line 2: the header has no 'rto' column (required: name, owner, criticality, sources, rpo, rto)"
    );
}

#[test]
fn malformed_csv_names_the_line() {
    let e = parse_register_csv(&format!("{HEADER}\na,ops,high,/srv/a,1h,1h\nb,ops,high\n"))
        .unwrap_err();
    match &e {
        ImportError::Csv { line, .. } => assert_eq!(*line, 3),
        other => panic!("{other}"),
    }
    assert!(
        e.to_string().starts_with("line 3: cannot read the CSV: "),
        "{e}"
    );
}

#[test]
fn asset_validation() {
    validate_asset(&asset()).unwrap();
    let check = |f: &dyn Fn(&mut Asset), field: &str, msg: &str| {
        let mut a = asset();
        f(&mut a);
        let e = validate_asset(&a).unwrap_err();
        assert_eq!(e.field, field);
        assert_eq!(e.to_string(), msg);
    };
    check(
        &|a| a.name = "x".repeat(65),
        "name",
        &format!(
            "asset '{}': name: is longer than 64 characters",
            "x".repeat(65)
        ),
    );
    check(
        &|a| a.name = "wéb".to_string(),
        "name",
        "asset 'wéb': name: 'é' is not allowed (letters, digits, '.', '_' and '-' only)",
    );
    check(
        &|a| a.name = "..".to_string(),
        "name",
        "asset '..': name: may not start with '-' or '.'",
    );
    check(
        &|a| a.owner = "  ".to_string(),
        "owner",
        "asset 'web-01': owner: is empty: every asset needs someone accountable for it",
    );
    check(
        &|a| a.owner = "ops\nteam".to_string(),
        "owner",
        "asset 'web-01': owner: holds a control character",
    );
    check(
        &|a| a.sources.clear(),
        "sources",
        "asset 'web-01': sources: none given: at least one absolute path",
    );
    check(
        &|a| a.sources.push("data".to_string()),
        "sources",
        "asset 'web-01': sources: 'data' is not an absolute path (it must start with '/')",
    );
    check(
        &|a| a.excludes.push(" ".to_string()),
        "excludes",
        "asset 'web-01': excludes: holds an empty pattern",
    );
    check(
        &|a| a.rpo = Duration(0),
        "rpo",
        "asset 'web-01': rpo: must be longer than 0s",
    );
    check(
        &|a| a.rto = Duration(0),
        "rto",
        "asset 'web-01': rto: must be longer than 0s",
    );
    let mut max = asset();
    max.name = format!("A.b_c-{}", "9".repeat(58));
    validate_asset(&max).unwrap();
}

#[test]
fn profile_validation() {
    validate_profile(&profile()).unwrap();
    let mut only_full = profile();
    only_full.schedules = Schedules {
        full: Some("daily".to_string()),
        ..Schedules::default()
    };
    validate_profile(&only_full).unwrap();

    let check = |f: &dyn Fn(&mut Profile), field: &str, msg: &str| {
        let mut p = profile();
        f(&mut p);
        let e = validate_profile(&p).unwrap_err();
        assert_eq!(e.field, field);
        assert_eq!(e.to_string(), msg);
    };
    check(
        &|p| p.schedules = Schedules::default(),
        "schedules",
        "profile 'standard': schedules: none given: at least one of full, differential, incremental",
    );
    check(
        &|p| p.schedules.differential = Some("Mon2 01:00".to_string()),
        "schedules.differential",
        "profile 'standard': schedules.differential: 'Mon2 01:00': unknown weekday 'Mon2' at \
         column 1 (expected Mon, Tue, Wed, Thu, Fri, Sat or Sun)",
    );
    check(
        &|p| p.schedules.incremental = Some("*-*-* 25:00".to_string()),
        "schedules.incremental",
        "profile 'standard': schedules.incremental: '*-*-* 25:00': hour 25 out of range 0..23 \
         at column 7",
    );
    check(
        &|p| p.schedules.full = Some(String::new()),
        "schedules.full",
        "profile 'standard': schedules.full: '': empty calendar expression \
         (e.g. 'daily', 'Mon..Fri 01:00', '*-*-01 03:30')",
    );
    check(
        &|p| p.name = "std/1".to_string(),
        "name",
        "profile 'std/1': name: '/' is not allowed (letters, digits, '.', '_' and '-' only)",
    );
    check(
        &|p| p.target = String::new(),
        "target",
        "profile 'standard': target: is empty",
    );
    check(
        &|p| p.retry_backoff = Duration(0),
        "retry_backoff",
        "profile 'standard': retry_backoff: must be longer than 0s when the profile retries",
    );
    check(
        &|p| {
            p.replicate_to = vec!["offsite".into()];
            p.replicate_schedule = Some("Mon2 02:00".into());
        },
        "replicate_schedule",
        "profile 'standard': replicate_schedule: 'Mon2 02:00': unknown weekday 'Mon2' at \
         column 1 (expected Mon, Tue, Wed, Thu, Fri, Sat or Sun)",
    );
    check(
        &|p| p.replicate_schedule = Some("daily".into()),
        "replicate_schedule",
        "profile 'standard': replicate_schedule: set, but replicate_to names no remote",
    );
    check(
        &|p| {
            p.drill = Some(coffer_types::api::DrillPolicy {
                schedule: "quarterly-ish".into(),
                from: coffer_types::api::DrillSource::Disk,
                random: false,
                remote: None,
            })
        },
        "drill.schedule",
        "profile 'standard': drill.schedule: 'quarterly-ish': unknown weekday 'quarterly-ish' at \
         column 1 (expected Mon, Tue, Wed, Thu, Fri, Sat or Sun)",
    );
    check(
        &|p| {
            p.drill = Some(coffer_types::api::DrillPolicy {
                schedule: "*-*-01 03:00".into(),
                from: coffer_types::api::DrillSource::Remote,
                random: false,
                remote: None,
            })
        },
        "drill.remote",
        "profile 'standard': drill.remote: a drill from a remote names the remote",
    );
    check(
        &|p| {
            p.drill = Some(coffer_types::api::DrillPolicy {
                schedule: "*-*-01 03:00".into(),
                from: coffer_types::api::DrillSource::Tape,
                random: false,
                remote: Some("offsite".into()),
            })
        },
        "drill.remote",
        "profile 'standard': drill.remote: 'offsite' is set, but the drill is from tape",
    );
    let mut nightly = profile();
    nightly.replicate_to = vec!["offsite".into()];
    nightly.replicate_schedule = Some("*-*-* 02:00".into());
    validate_profile(&nightly).unwrap();
    let mut no_retry = profile();
    no_retry.retries = 0;
    no_retry.retry_backoff = Duration(0);
    validate_profile(&no_retry).unwrap();
}
#[test]
fn line_numbers_count_comments_blank_lines_and_quoted_newlines() {
    let csv = "\u{feff}\n# exported\r\n\r\nname,owner,criticality,sources,rpo,rto\r\n\
               # a comment\r\n\r\n\
               \"a\",\"ops, on call\",low,/a,1h,1h\r\n\
               # another\n\
               b,ops,low,/b,4x,1h\n";
    assert_eq!(
        import_err(csv),
        "line 9, column rpo: '4x' is not a duration (e.g. 90s, 15m, 4h, 1d, 2w, 1h30m)"
    );
    // A row is reported at its first line, and a quoted newline counts.
    let csv = format!("{HEADER}\na,\"ops\non two lines\",low,/a,1h,1h\nb,ops,low,/b,4x,1h\n");
    assert_eq!(
        import_err(&csv),
        "line 2, column owner: holds a control character"
    );
    let csv = format!("{HEADER}\na,\"ops\",low,\"/a;\n/b\",1h,1h\nb,ops,low,/b,4x,1h\n");
    assert_eq!(
        import_err(&csv),
        "line 4, column rpo: '4x' is not a duration (e.g. 90s, 15m, 4h, 1d, 2w, 1h30m)"
    );
    assert_eq!(
        import_err("\n\n# c\nname,owner\n"),
        "line 4: the header has no 'criticality' column \
         (required: name, owner, criticality, sources, rpo, rto)"
    );
    let e = parse_register_csv(&format!("{HEADER}\n# c\n\na,ops,high,/srv/a,1h\n")).unwrap_err();
    assert!(matches!(e, ImportError::Csv { line: 4, .. }), "{e:?}");
}
