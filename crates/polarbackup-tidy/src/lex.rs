//! Just enough of a Rust lexer to tell code from comments and string literals, so that a rule
//! about code does not fire on prose and the SQL rule looks at string literals only.

/// One string literal: its value (escapes resolved) and the 1-based source line of each of its
/// characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Literal {
    pub value: Vec<char>,
    pub lines: Vec<usize>,
}

/// A Rust source split into its code and its string literals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lexed {
    /// The source with comments, and the contents of string and char literals, blanked to spaces.
    /// Line breaks stay, so line `n` of `code` is line `n` of the source.
    pub code: String,
    pub literals: Vec<Literal>,
}

pub fn lex(src: &str) -> Lexed {
    let mut l = Lexer {
        s: src.chars().collect(),
        i: 0,
        line: 1,
        code: String::with_capacity(src.len()),
        literals: Vec::new(),
    };
    l.run();
    Lexed {
        code: l.code,
        literals: l.literals,
    }
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

struct Lexer {
    s: Vec<char>,
    i: usize,
    line: usize,
    code: String,
    literals: Vec<Literal>,
}

impl Lexer {
    fn peek(&self, ahead: usize) -> Option<char> {
        self.s.get(self.i + ahead).copied()
    }

    /// Copies the current character into `code`.
    fn keep(&mut self) {
        let c = self.s[self.i];
        self.code.push(c);
        if c == '\n' {
            self.line += 1;
        }
        self.i += 1;
    }

    /// Blanks the current character in `code` (a line break stays one).
    fn blank(&mut self) {
        if self.s[self.i] == '\n' {
            self.code.push('\n');
            self.line += 1;
        } else {
            self.code.push(' ');
        }
        self.i += 1;
    }

    fn run(&mut self) {
        while self.i < self.s.len() {
            match (self.s[self.i], self.peek(1)) {
                ('/', Some('/')) => {
                    while self.i < self.s.len() && self.s[self.i] != '\n' {
                        self.blank();
                    }
                }
                ('/', Some('*')) => self.block_comment(),
                ('"', _) => self.string(None),
                ('\'', _) => self.char_or_lifetime(),
                (c, _) if is_ident(c) => self.word(),
                _ => self.keep(),
            }
        }
    }

    /// Block comments nest in Rust.
    fn block_comment(&mut self) {
        let mut depth = 0usize;
        while self.i < self.s.len() {
            match (self.s[self.i], self.peek(1)) {
                ('/', Some('*')) => {
                    depth += 1;
                    self.blank();
                    self.blank();
                }
                ('*', Some('/')) => {
                    depth -= 1;
                    self.blank();
                    self.blank();
                    if depth == 0 {
                        return;
                    }
                }
                _ => self.blank(),
            }
        }
    }

    /// An identifier or keyword; `r`, `b`, `br`, `c` and `cr` may prefix a string literal.
    fn word(&mut self) {
        let start = self.i;
        let mut end = start;
        while end < self.s.len() && is_ident(self.s[end]) {
            end += 1;
        }
        let word: String = self.s[start..end].iter().collect();
        let next = self.s.get(end).copied();
        let raw = matches!(word.as_str(), "r" | "br" | "cr");
        let prefixed = raw || matches!(word.as_str(), "b" | "c");
        while self.i < end {
            self.keep();
        }
        if raw && next == Some('#') {
            let hashes = self.s[end..].iter().take_while(|&&c| c == '#').count();
            // `r#ident` is a raw identifier, not a string.
            if self.s.get(end + hashes) == Some(&'"') {
                for _ in 0..hashes {
                    self.keep();
                }
                self.string(Some(hashes));
            }
        } else if prefixed && next == Some('"') {
            self.string(raw.then_some(0));
        }
    }

    /// A string literal starting at its opening quote; `raw` is the number of `#`s of a raw one.
    fn string(&mut self, raw: Option<usize>) {
        self.keep();
        let mut lit = Literal {
            value: Vec::new(),
            lines: Vec::new(),
        };
        while self.i < self.s.len() {
            let c = self.s[self.i];
            if c == '"' {
                let hashes = raw.unwrap_or(0);
                let closes = (1..=hashes).all(|k| self.peek(k) == Some('#'));
                if closes {
                    self.keep();
                    for _ in 0..hashes {
                        self.keep();
                    }
                    break;
                }
            }
            if c == '\\' && raw.is_none() {
                self.escape(&mut lit);
                continue;
            }
            lit.value.push(c);
            lit.lines.push(self.line);
            self.blank();
        }
        self.literals.push(lit);
    }

    /// One escape sequence inside a (non-raw) string literal.
    fn escape(&mut self, lit: &mut Literal) {
        let line = self.line;
        self.blank();
        let Some(c) = self.peek(0) else { return };
        self.blank();
        let value = match c {
            'n' => Some('\n'),
            't' => Some('\t'),
            'r' => Some('\r'),
            '0' => Some('\0'),
            'x' => {
                let digits: String = self.s[self.i..].iter().take(2).collect();
                for _ in 0..digits.len() {
                    self.blank();
                }
                u32::from_str_radix(&digits, 16)
                    .ok()
                    .and_then(char::from_u32)
            }
            'u' => {
                let mut digits = String::new();
                while self.i < self.s.len() && self.s[self.i] != '}' {
                    if self.s[self.i].is_ascii_hexdigit() {
                        digits.push(self.s[self.i]);
                    }
                    self.blank();
                }
                if self.i < self.s.len() {
                    self.blank();
                }
                u32::from_str_radix(&digits, 16)
                    .ok()
                    .and_then(char::from_u32)
            }
            // A line continuation: the break and the next line's indentation are not part of
            // the value, but they separate words as a space would.
            '\n' => {
                while self.peek(0).is_some_and(char::is_whitespace) {
                    self.blank();
                }
                Some(' ')
            }
            other => Some(other),
        };
        if let Some(v) = value {
            lit.value.push(v);
            lit.lines.push(line);
        }
    }

    /// `'x'`, `'\n'`, `'"'` are char literals (blanked); `'a` in `&'a str` is a lifetime.
    fn char_or_lifetime(&mut self) {
        if self.peek(1) == Some('\\') {
            self.keep();
            self.blank();
            self.blank();
            while self.i < self.s.len() && self.s[self.i] != '\'' && self.s[self.i] != '\n' {
                self.blank();
            }
            if self.peek(0) == Some('\'') {
                self.keep();
            }
        } else if self.peek(2) == Some('\'') {
            self.keep();
            self.blank();
            self.keep();
        } else {
            self.keep();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(l: &Lexed) -> Vec<String> {
        l.literals
            .iter()
            .map(|lit| lit.value.iter().collect())
            .collect()
    }

    #[test]
    fn comments_and_literals_are_blanked_and_lines_kept() {
        let src = "let a = \"x // y\"; // note\n/* one /* two */ still */ let b = 'q';\nf()";
        let l = lex(src);
        let blank = |n| " ".repeat(n);
        let want = format!(
            "let a = \"{}\"; {}\n{} let b = ' ';\nf()",
            blank(6),
            blank(7),
            blank(25)
        );
        assert_eq!(l.code, want);
        assert_eq!(values(&l), vec!["x // y"]);
    }

    #[test]
    fn raw_byte_and_escaped_strings() {
        let src = "r#\"a \"quoted\" b\"#; br\"c\"; b\"d\\n\"; \"e\\\n    f\"; \"\\u{41}\\x42\"";
        assert_eq!(
            values(&lex(src)),
            vec!["a \"quoted\" b", "c", "d\n", "e f", "AB"]
        );
    }

    #[test]
    fn lifetimes_raw_identifiers_and_quote_chars_do_not_open_strings() {
        let src = "fn f<'a>(x: &'a str) -> char { let r#type = 1; '\"' }\nlet s = \"real\";";
        let l = lex(src);
        assert_eq!(values(&l), vec!["real"]);
        assert_eq!(l.literals[0].lines, vec![2; 4]);
        assert!(l.code.contains("&'a str") && l.code.contains("r#type"));
    }

    #[test]
    fn multi_line_literals_know_each_line() {
        let l = lex("x(\"SELECT 1\n  FROM t\")");
        let lit = &l.literals[0];
        let from = lit.value.iter().position(|&c| c == 'F').unwrap();
        assert_eq!((lit.lines[0], lit.lines[from]), (1, 2));
    }
}
