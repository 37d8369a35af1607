//! Shell-style globs for `--only` and `--exclude`: `*`, `?` and `[...]`
//! (with `!` or `^` negation and ranges), matched against config file names.

/// Does `name` match `pattern`? Iterative with one backtrack point for `*`,
/// so it is linear-ish and never recurses.
pub fn matches(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() {
            match p[pi] {
                '*' => {
                    star = Some((pi, ni));
                    pi += 1;
                    continue;
                }
                '?' => {
                    pi += 1;
                    ni += 1;
                    continue;
                }
                '[' => {
                    if let Some((ok, len)) = class(&p[pi..], n[ni]) {
                        if ok {
                            pi += len;
                            ni += 1;
                            continue;
                        }
                    } else if n[ni] == '[' {
                        // An unclosed `[` is a literal.
                        pi += 1;
                        ni += 1;
                        continue;
                    }
                }
                c if c == n[ni] => {
                    pi += 1;
                    ni += 1;
                    continue;
                }
                _ => {}
            }
        }
        match star {
            Some((sp, sn)) => {
                pi = sp + 1;
                ni = sn + 1;
                star = Some((sp, sn + 1));
            }
            None => return false,
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Matches `c` against the class starting at `p[0] == '['`: whether it
/// matched and the class's length, or `None` if the class is not closed.
fn class(p: &[char], c: char) -> Option<(bool, usize)> {
    let mut i = 1;
    let negate = matches!(p.get(i), Some('!') | Some('^'));
    if negate {
        i += 1;
    }
    let mut hit = false;
    let mut first = true;
    while i < p.len() {
        if p[i] == ']' && !first {
            return Some((hit != negate, i + 1));
        }
        first = false;
        if i + 2 < p.len() && p[i + 1] == '-' && p[i + 2] != ']' {
            if p[i] <= c && c <= p[i + 2] {
                hit = true;
            }
            i += 3;
        } else {
            if p[i] == c {
                hit = true;
            }
            i += 1;
        }
    }
    None
}

/// Checks a pattern for the command line: non-empty, no `/`.
pub fn validate(flag: &str, pattern: &str) -> Result<(), String> {
    if pattern.is_empty() || pattern.contains('/') {
        return Err(format!(
            "{flag} expects a file-name glob such as 'app_0*.ini', got {pattern:?}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn globs() {
        assert!(matches("*.ini", "app_01.ini"));
        assert!(matches("app_0?.ini", "app_07.ini"));
        assert!(!matches("app_0?.ini", "app_10.ini"));
        assert!(matches("app_[0-1]*", "app_10.ini"));
        assert!(!matches("app_[!0]*", "app_01.ini"));
        assert!(matches("*", ""));
        assert!(!matches("a*b", "acbd"));
        assert!(matches("a*b*c", "axxbyyc"));
        assert!(matches("[x", "[x"));
        assert!(matches("[]]", "]"));
    }
}
