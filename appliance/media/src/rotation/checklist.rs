//! The rotation as operators read it: the day's procedure as a checklist,
//! printable transfer manifests, the chain of custody. The shell prints
//! these in direct mode and renders the service's answers with them.

use std::fmt::Write as _;

use coffer_catalog::{CustodyEvent, TransferManifest};

use super::{Day, Inventory, Plan, SetChoice};

/// Renders the day's procedure as the operator's checklist.
pub fn checklist(p: &Plan, inv: &Inventory) -> String {
    let mut t = String::new();
    let set_of = |b: &str| {
        inv.cart(b)
            .and_then(|c| c.set.clone())
            .unwrap_or_else(|| "-".into())
    };
    let _ = writeln!(
        t,
        "Media rotation, pool {}, {} ({:?})",
        p.pool,
        p.day,
        p.day.weekday()
    );
    let mut none = true;
    let mut section = |t: &mut String, title: &str, lines: Vec<String>| {
        if lines.is_empty() {
            return;
        }
        none = false;
        let _ = writeln!(t, "\n{title}");
        for l in lines {
            let _ = writeln!(t, "  {l}");
        }
    };
    section(
        &mut t,
        "Confirm receipt at the vault (`coffer media received …`):",
        p.due_at_vault.clone(),
    );
    section(
        &mut t,
        "Receive back onsite (`coffer media received …`):",
        p.due_onsite.clone(),
    );
    section(
        &mut t,
        "Sets whose retention ended (`coffer media rotation settle` records it):",
        p.expire.clone(),
    );
    section(
        &mut t,
        "Load into the library (`coffer media import …`):",
        p.load.clone(),
    );
    if let Some(j) = &p.job {
        let set = match &j.set {
            SetChoice::New => format!("a new {} set", j.tier),
            SetChoice::Continue { id } => format!("set {id} (continued)"),
        };
        section(
            &mut t,
            "Tonight's tape job:",
            vec![
                format!(
                    "{:?} backup onto {set}, kept until {} at least{}",
                    j.level,
                    j.expires,
                    if j.close_after {
                        "; the set closes after it"
                    } else {
                        ""
                    }
                ),
                format!(
                    "cartridges (in the library by tonight): {}",
                    j.cartridges.join(", ")
                ),
            ],
        );
    }
    section(
        &mut t,
        "Move to the export slots for the vault (`coffer media export …`):",
        p.export
            .iter()
            .map(|e| format!("{} (set {}) → vault {}", e.barcode, e.set, e.vault))
            .collect(),
    );
    section(
        &mut t,
        "Hand to the courier today (`coffer media sent MANIFEST`):",
        p.send
            .iter()
            .map(|b| format!("{b} (set {})", set_of(b)))
            .collect(),
    );
    section(
        &mut t,
        "Recall from the vault (`coffer media recall …`):",
        p.recall
            .iter()
            .map(|r| {
                format!(
                    "{} from vault {}, needed by {}",
                    r.barcode, r.vault, r.needed_by
                )
            })
            .collect(),
    );
    if p.scratch_short > 0 {
        section(
            &mut t,
            "Scratch cartridges needed:",
            vec![format!(
                "{} more for tonight: insert them (`coffer media add {} BARCODE…`)",
                p.scratch_short, p.pool
            )],
        );
    }
    if p.cleaning_due {
        section(
            &mut t,
            "Cleaning:",
            vec![format!(
                "a drive cleaning is due; record it with `coffer media cleaned {}`",
                p.pool
            )],
        );
    }
    section(&mut t, "Warnings:", p.warnings.clone());
    if none {
        let _ = writeln!(t, "\nNothing to do today.");
    }
    t
}

/// A transfer manifest as printed for the courier: its cartridges with
/// their sets (`sets`, in the same order), and lines to sign.
pub fn manifest_text(m: &TransferManifest, sets: &[Option<String>]) -> String {
    let mut t = String::new();
    let _ = writeln!(t, "TRANSFER MANIFEST {}", m.id);
    let _ = writeln!(t, "pool {}, {} vault {}", m.pool, m.direction, m.vault);
    let _ = writeln!(
        t,
        "prepared by {} at {}",
        m.created_by,
        Day::from_ms(m.created_ms)
    );
    let _ = writeln!(t, "\n  #  barcode    media set");
    for (i, b) in m.barcodes.iter().enumerate() {
        let set = sets.get(i).cloned().flatten().unwrap_or_default();
        let _ = writeln!(t, "{:>3}  {b:<9}  {set}", i + 1);
    }
    let _ = writeln!(t, "\n{} cartridge(s)", m.barcodes.len());
    let sign = |at: Option<i64>| {
        at.map_or("________________ (date, name, signature)".into(), |t| {
            Day::from_ms(t).to_string()
        })
    };
    let _ = writeln!(t, "handed to the courier: {}", sign(m.sent_ms));
    let _ = writeln!(
        t,
        "received by the {}: {}",
        if m.direction == "to-vault" {
            "vault"
        } else {
            "site"
        },
        sign(m.received_ms)
    );
    t
}

/// Every transfer manifest, one line each.
pub fn manifests_table(all: &[TransferManifest]) -> String {
    let mut t = String::new();
    if all.is_empty() {
        t.push_str("(no transfer manifests)\n");
    }
    for m in all {
        let _ = writeln!(
            t,
            "{:>5}  {:<8} {:<9} vault {:<10} {:>3} cartridge(s)  {}",
            m.id,
            m.pool,
            m.direction,
            m.vault,
            m.barcodes.len(),
            match (m.sent_ms, m.received_ms) {
                (_, Some(_)) => "received",
                (Some(_), None) => "in transit",
                _ => "not yet sent",
            }
        );
    }
    t
}

/// Chain-of-custody lines, oldest first.
pub fn custody_text(chain: &[CustodyEvent]) -> String {
    let mut t = String::new();
    if chain.is_empty() {
        t.push_str("(no custody records)\n");
    }
    for e in chain {
        let _ = writeln!(
            t,
            "{}  {:<9} {:<18} {} → {}  by {}{}",
            e.day,
            e.barcode,
            e.event,
            e.from_state,
            e.to_state,
            e.identity,
            e.manifest
                .map(|m| format!(" (manifest {m})"))
                .unwrap_or_default()
        );
    }
    t
}
