//! Splitting a shell line into words, with the quoting a POSIX shell uses:
//! `'single quotes'` keep everything literally, `"double quotes"` keep
//! everything but the escapes `\"` and `\\`, and outside quotes a backslash
//! keeps the next character literally. Quotes join with what touches them
//! (`--exclude='*.tmp'` is one word), and `''` is an empty word.
//!
//! [`split_partial`] splits the part of a line before the cursor for
//! completion: the words already finished, and the word being typed with
//! where it starts.

use std::fmt;

/// Why a line did not split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SplitError {
    /// A quote was opened and never closed.
    UnterminatedQuote(char),
    /// The line ends in a backslash that escapes nothing.
    TrailingBackslash,
}

impl fmt::Display for SplitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SplitError::UnterminatedQuote('\'') => f.write_str("unterminated single quote"),
            SplitError::UnterminatedQuote(_) => f.write_str("unterminated double quote"),
            SplitError::TrailingBackslash => f.write_str("a backslash at the end of the line"),
        }
    }
}

impl std::error::Error for SplitError {}

/// The words of a line cut at the cursor.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Partial {
    /// The words before the one being typed.
    pub words: Vec<String>,
    /// The word being typed, unquoted (empty after a space).
    pub current: String,
    /// Byte offset in the line where the word being typed starts.
    pub start: usize,
    /// The quote left open in the word being typed.
    pub open_quote: Option<char>,
}

/// What the splitter ended in.
struct Scan {
    /// Finished words with their start offsets.
    words: Vec<(usize, String)>,
    /// The word still being read, with its start offset.
    open: Option<(usize, String)>,
    quote: Option<char>,
    trailing_backslash: bool,
}

fn scan(line: &str) -> Scan {
    let mut words = Vec::new();
    let mut open: Option<(usize, String)> = None;
    let mut quote: Option<char> = None;
    let mut chars = line.char_indices().peekable();
    let mut trailing_backslash = false;
    while let Some((i, c)) = chars.next() {
        match quote {
            Some('\'') => {
                if c == '\'' {
                    quote = None;
                } else if let Some((_, w)) = open.as_mut() {
                    w.push(c);
                }
            }
            Some(_) => match c {
                '"' => quote = None,
                '\\' => {
                    let w = &mut open.get_or_insert_with(|| (i, String::new())).1;
                    match chars.peek() {
                        Some(&(_, n)) if n == '"' || n == '\\' => {
                            w.push(n);
                            chars.next();
                        }
                        Some(_) => w.push('\\'),
                        None => trailing_backslash = true,
                    }
                }
                _ => {
                    if let Some((_, w)) = open.as_mut() {
                        w.push(c);
                    }
                }
            },
            None => match c {
                c if c.is_whitespace() => {
                    if let Some(w) = open.take() {
                        words.push(w);
                    }
                }
                '\'' | '"' => {
                    open.get_or_insert_with(|| (i, String::new()));
                    quote = Some(c);
                }
                '\\' => {
                    let w = &mut open.get_or_insert_with(|| (i, String::new())).1;
                    match chars.next() {
                        Some((_, n)) => w.push(n),
                        None => trailing_backslash = true,
                    }
                }
                _ => open.get_or_insert_with(|| (i, String::new())).1.push(c),
            },
        }
    }
    Scan {
        words,
        open,
        quote,
        trailing_backslash,
    }
}

/// Splits a whole line into words.
pub fn split(line: &str) -> Result<Vec<String>, SplitError> {
    let s = scan(line);
    if let Some(q) = s.quote {
        return Err(SplitError::UnterminatedQuote(q));
    }
    if s.trailing_backslash {
        return Err(SplitError::TrailingBackslash);
    }
    let mut words: Vec<String> = s.words.into_iter().map(|(_, w)| w).collect();
    if let Some((_, w)) = s.open {
        words.push(w);
    }
    Ok(words)
}

/// Splits the part of a line before the cursor, for completion. Never fails:
/// an open quote is reported, not refused.
pub fn split_partial(line_to_cursor: &str) -> Partial {
    let s = scan(line_to_cursor);
    let words = s.words.into_iter().map(|(_, w)| w).collect();
    match s.open {
        Some((start, current)) => Partial {
            words,
            current,
            start,
            open_quote: s.quote,
        },
        None => Partial {
            words,
            current: String::new(),
            start: line_to_cursor.len(),
            open_quote: None,
        },
    }
}

/// Quotes a word so that [`split`] gives it back unchanged (for completion
/// candidates and for showing commands).
pub fn quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word.chars().all(|c| {
            c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | '/' | ',' | ':' | '@' | '+' | '=')
        });
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(line: &str) -> Vec<String> {
        split(line).unwrap()
    }

    #[test]
    fn plain_words_and_whitespace() {
        assert_eq!(
            w("  job   list\t--limit 5 "),
            ["job", "list", "--limit", "5"]
        );
        assert!(w("").is_empty());
        assert!(w("   ").is_empty());
    }

    #[test]
    fn quotes_keep_spaces_and_join_with_neighbours() {
        assert_eq!(
            w("schedule check 'Mon..Fri 01:00'"),
            ["schedule", "check", "Mon..Fri 01:00"]
        );
        assert_eq!(w(r#"a "b c" d"#), ["a", "b c", "d"]);
        assert_eq!(w("--exclude='*.tmp'"), ["--exclude=*.tmp"]);
        assert_eq!(w(r#"x"y"'z'"#), ["xyz"]);
        assert_eq!(w("--profile '' x"), ["--profile", "", "x"]);
        assert_eq!(w(r#""""#), [""]);
    }

    #[test]
    fn escapes() {
        assert_eq!(w(r"a\ b c"), ["a b", "c"]);
        assert_eq!(w(r"\'x"), ["'x"]);
        assert_eq!(w(r#""say \"hi\" \\ \n""#), [r#"say "hi" \ \n"#]);
        // nothing is special inside single quotes
        assert_eq!(w(r"'a\b\'"), [r"a\b\"]);
        assert_eq!(w(r#"'a"b'"#), [r#"a"b"#]);
    }

    #[test]
    fn errors() {
        assert_eq!(split("a 'b"), Err(SplitError::UnterminatedQuote('\'')));
        assert_eq!(split("a \"b"), Err(SplitError::UnterminatedQuote('"')));
        assert_eq!(split("a b\\"), Err(SplitError::TrailingBackslash));
        assert_eq!(
            split("x 'y").unwrap_err().to_string(),
            "unterminated single quote"
        );
    }

    #[test]
    fn partial_lines() {
        let p = split_partial("asset show we");
        assert_eq!(p.words, ["asset", "show"]);
        assert_eq!(p.current, "we");
        assert_eq!(p.start, 11);
        let p = split_partial("asset ");
        assert_eq!(p.words, ["asset"]);
        assert_eq!(p.current, "");
        assert_eq!(p.start, 6);
        let p = split_partial("asset show 'my as");
        assert_eq!(p.current, "my as");
        assert_eq!(p.start, 11);
        assert_eq!(p.open_quote, Some('\''));
        let p = split_partial("");
        assert!(p.words.is_empty());
        assert_eq!(p.start, 0);
    }

    #[test]
    fn quote_round_trips() {
        for s in [
            "web-01",
            "a b",
            "it's",
            "",
            "*.tmp",
            "x\"y",
            "/srv/data",
            "a\\b",
        ] {
            assert_eq!(w(&quote(s)), [s], "{s:?} -> {}", quote(s));
        }
        assert_eq!(quote("web-01"), "web-01");
    }
}
