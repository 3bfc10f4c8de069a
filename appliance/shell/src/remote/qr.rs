//! QR codes drawn in the terminal, for TOTP enrollment: two module rows per
//! text line with the half blocks `▀ ▄ █`, inside the four-module quiet
//! zone the QR specification asks for.
//!
//! Light modules (and the quiet zone) are drawn as block glyphs and dark
//! modules as blanks, so on the usual light-on-dark terminal the code
//! appears dark on light, as scanners expect. With `color`, the glyphs are
//! painted white on black explicitly, so a light-themed terminal shows it
//! the same way.

use qrcode::{Color, QrCode};

/// The quiet zone around the code, in modules (ISO/IEC 18004).
pub const QUIET_ZONE: usize = 4;

/// The QR code of `data` as terminal text; `None` when `data` is too long
/// for a QR code.
pub fn render(data: &str, color: bool) -> Option<String> {
    let code = QrCode::new(data.as_bytes()).ok()?;
    Some(draw(&code, color))
}

/// Draws an encoded code.
pub fn draw(code: &QrCode, color: bool) -> String {
    let w = code.width();
    let colors = code.to_colors();
    let size = w + 2 * QUIET_ZONE;
    // Whether the module at (x, y) of the padded square is light; rows
    // below the square (the last half line of an odd size) count as dark,
    // that is, not drawn.
    let light = |x: usize, y: usize| -> bool {
        if y >= size {
            return false;
        }
        if x < QUIET_ZONE || y < QUIET_ZONE || x >= QUIET_ZONE + w || y >= QUIET_ZONE + w {
            return true;
        }
        colors[(y - QUIET_ZONE) * w + (x - QUIET_ZONE)] == Color::Light
    };
    let mut out = String::with_capacity((size + 12) * size.div_ceil(2) * 3);
    for y in (0..size).step_by(2) {
        if color {
            out.push_str("\x1b[97;40m");
        }
        for x in 0..size {
            out.push(match (light(x, y), light(x, y + 1)) {
                (true, true) => '█',
                (true, false) => '▀',
                (false, true) => '▄',
                (false, false) => ' ',
            });
        }
        if color {
            out.push_str("\x1b[0m");
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const URI: &str = "otpauth://totp/Coffer:alice?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&issuer=Coffer&algorithm=SHA1&digits=6&period=30";

    /// Reads the modules back from the drawing: true is light.
    fn modules(text: &str, size: usize) -> Vec<Vec<bool>> {
        let mut rows = vec![vec![false; size]; size + 1];
        for (line_no, line) in text.lines().enumerate() {
            for (x, c) in line.chars().enumerate() {
                let (top, bottom) = match c {
                    '█' => (true, true),
                    '▀' => (true, false),
                    '▄' => (false, true),
                    ' ' => (false, false),
                    other => panic!("unexpected {other:?}"),
                };
                rows[2 * line_no][x] = top;
                rows[2 * line_no + 1][x] = bottom;
            }
        }
        rows.truncate(size);
        rows
    }

    #[test]
    fn size_matches_the_version() {
        let code = QrCode::new(URI.as_bytes()).unwrap();
        let qrcode::Version::Normal(v) = code.version() else {
            panic!("micro QR")
        };
        let w = 17 + 4 * usize::try_from(v).unwrap();
        assert_eq!(code.width(), w);
        let text = render(URI, false).unwrap();
        let size = w + 2 * QUIET_ZONE;
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), size.div_ceil(2));
        for l in &lines {
            assert_eq!(l.chars().count(), size);
        }
    }

    #[test]
    fn quiet_zone_and_modules_round_trip() {
        let code = QrCode::new(URI.as_bytes()).unwrap();
        let w = code.width();
        let size = w + 2 * QUIET_ZONE;
        let m = modules(&draw(&code, false), size);
        for y in 0..size {
            for x in 0..size {
                let in_zone =
                    x < QUIET_ZONE || y < QUIET_ZONE || x >= QUIET_ZONE + w || y >= QUIET_ZONE + w;
                let expect = in_zone || code[(x - QUIET_ZONE, y - QUIET_ZONE)] == Color::Light;
                assert_eq!(m[y][x], expect, "module ({x}, {y})");
            }
        }
        // the top-left finder pattern: a dark 7x7 ring just inside the zone
        for i in 0..7 {
            assert!(!m[QUIET_ZONE][QUIET_ZONE + i]);
            assert!(!m[QUIET_ZONE + 6][QUIET_ZONE + i]);
            assert!(!m[QUIET_ZONE + i][QUIET_ZONE]);
        }
        assert!(m[QUIET_ZONE + 1][QUIET_ZONE + 1]);
    }

    #[test]
    fn deterministic_and_colored_on_request() {
        assert_eq!(render(URI, false), render(URI, false));
        let plain = render(URI, false).unwrap();
        let colored = render(URI, true).unwrap();
        assert_eq!(
            colored.replace("\x1b[97;40m", "").replace("\x1b[0m", ""),
            plain
        );
        assert!(
            colored
                .lines()
                .all(|l| l.starts_with("\x1b[97;40m") && l.ends_with("\x1b[0m"))
        );
        // the first two lines are the quiet zone: solid light
        for l in plain.lines().take(QUIET_ZONE / 2) {
            assert!(l.chars().all(|c| c == '█'), "{l}");
        }
        assert!(render(&"x".repeat(8000), false).is_none());
    }
}
