//! `$(VAR)` expansion in container env values, exactly as the kubelet does it
//! (k8s.io/kubernetes third_party/forked/golang/expansion): `$(NAME)` becomes
//! the value of a variable defined EARLIER in the same container (or by its
//! envFrom), an unknown reference stays as written, `$$` is an escaped `$`,
//! and any other `$` is kept. The image's own env is never visible here.

/// Expands `input`; `lookup` answers for the variables defined so far.
pub fn expand(input: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let bytes = input.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(bytes.len());
    let mut checkpoint = 0;
    let mut cursor = 0;
    while cursor < bytes.len() {
        if bytes[cursor] == b'$' && cursor + 1 < bytes.len() {
            out.extend_from_slice(&bytes[checkpoint..cursor]);
            let rest = &bytes[cursor + 1..];
            let advance = match rest[0] {
                b'$' => {
                    out.push(b'$');
                    1
                }
                b'(' => match rest.iter().position(|&b| b == b')') {
                    Some(close) => {
                        let name = &input[cursor + 2..cursor + 1 + close];
                        match lookup(name) {
                            Some(value) => out.extend_from_slice(value.as_bytes()),
                            None => out.extend_from_slice(format!("$({name})").as_bytes()),
                        }
                        close + 1
                    }
                    // Incomplete reference: keep "$(" and go on after it.
                    None => {
                        out.extend_from_slice(b"$(");
                        1
                    }
                },
                other => {
                    out.push(b'$');
                    out.push(other);
                    1
                }
            };
            cursor += advance;
            checkpoint = cursor + 1;
        }
        cursor += 1;
    }
    out.extend_from_slice(&bytes[checkpoint.min(bytes.len())..]);
    // Only whole input byte runs and whole values were copied: still UTF-8.
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::expand;

    fn vars(name: &str) -> Option<String> {
        match name {
            "DB_USER" => Some("app".to_owned()),
            "DB_HOST" => Some("db:5432".to_owned()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn expands_known_references() {
        assert_eq!(expand("postgres://$(DB_USER)@$(DB_HOST)/app", vars), "postgres://app@db:5432/app");
        assert_eq!(expand("$(EMPTY)x", vars), "x");
    }

    #[test]
    fn keeps_unknown_and_incomplete_references() {
        assert_eq!(expand("$(NOPE)/$(DB_USER)", vars), "$(NOPE)/app");
        assert_eq!(expand("a$(DB_USER", vars), "a$(DB_USER");
        assert_eq!(expand("trailing$", vars), "trailing$");
    }

    #[test]
    fn dollar_dollar_escapes() {
        assert_eq!(expand("$$(DB_USER)", vars), "$(DB_USER)");
        assert_eq!(expand("$$$(DB_USER)", vars), "$app");
        assert_eq!(expand("pa$$word", vars), "pa$word");
        assert_eq!(expand("$x $1", vars), "$x $1");
    }
}
