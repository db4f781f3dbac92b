//! Glob patterns over asset paths, with the semantics of Python's `fnmatch` (which the Python
//! SDK uses for `match=`), so a pattern selects the same files in both SDKs: `*` matches any
//! run of characters, `/` included; `?` one character; `[abc]`, `[a-z]` one character of a
//! set, `[!abc]` (or `[^abc]`) one character outside it; anything else matches itself. A `[`
//! without its closing `]` is an ordinary character.

/// Whether `path` matches `pattern` (see the module docs).
pub fn matches(pattern: &str, path: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let path: Vec<char> = path.chars().collect();
    // Greedy matching that backtracks to the last `*` only: linear in practice.
    let (mut p, mut s) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while s < path.len() {
        match pattern.get(p) {
            Some('*') => {
                star = Some((p + 1, s));
                p += 1;
                continue;
            }
            Some('?') => {
                p += 1;
                s += 1;
                continue;
            }
            Some('[') => {
                if let Some((matched, next)) = class(&pattern, p, path[s]) {
                    if matched {
                        p = next;
                        s += 1;
                        continue;
                    }
                } else if path[s] == '[' {
                    p += 1;
                    s += 1;
                    continue;
                }
            }
            Some(c) if *c == path[s] => {
                p += 1;
                s += 1;
                continue;
            }
            _ => {}
        }
        match star {
            // Let the last `*` swallow one more character and try again.
            Some((after, from)) => {
                p = after;
                s = from + 1;
                star = Some((after, from + 1));
            }
            None => return false,
        }
    }
    pattern[p..].iter().all(|c| *c == '*')
}

/// The set starting at `pattern[open]` (a `[`): whether `c` is in it and the index after its
/// `]`, or `None` if it is not closed.
fn class(pattern: &[char], open: usize, c: char) -> Option<(bool, usize)> {
    let mut i = open + 1;
    let negated = matches!(pattern.get(i), Some('!' | '^'));
    if negated {
        i += 1;
    }
    let mut found = false;
    let mut first = true;
    loop {
        let item = *pattern.get(i)?;
        if item == ']' && !first {
            return Some((found != negated, i + 1));
        }
        first = false;
        if pattern.get(i + 1) == Some(&'-') && pattern.get(i + 2).is_some_and(|e| *e != ']') {
            let end = pattern[i + 2];
            found |= item <= c && c <= end;
            i += 3;
        } else {
            found |= item == c;
            i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn patterns_match_like_python_fnmatch() {
        let cases = [
            ("*.csv", "a.csv", true),
            ("*.csv", "data/sub/a.csv", true), // `*` crosses `/`, as in fnmatch
            ("data/*.csv", "data/one.csv", true),
            ("data/*.csv", "other/one.csv", false),
            ("data/*.csv", "data/one.csvx", false),
            ("?.txt", "a.txt", true),
            ("?.txt", "ab.txt", false),
            ("[ab].txt", "b.txt", true),
            ("[!ab].txt", "b.txt", false),
            ("[^ab].txt", "c.txt", true),
            ("[a-c]x", "bx", true),
            ("[a-c]x", "dx", false),
            ("[]]", "]", true),
            ("[a-]", "-", true),
            ("a[b", "a[b", true),
            ("*", "", true),
            ("", "", true),
            ("", "a", false),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "axxbyy", false),
            ("**/x", "a/b/x", true),
            ("report", "report", true),
            ("report", "report/a", false),
        ];
        for (pattern, path, expected) in cases {
            assert_eq!(matches(pattern, path), expected, "{pattern:?} vs {path:?}");
        }
    }
}
