//! NATS subjects: which are valid, and what wildcard patterns match, by the
//! server's rules (`*` is one token, `>` one or more trailing tokens). One
//! place for them: `load` checks a definition's streams and consumers with
//! them, `plan` the definition's streams against those already on the server.

/// Whether `subject` is a subject or pattern the server accepts: tokens
/// separated by dots, none empty, `*` and `>` only as whole tokens, `>` last.
pub(crate) fn valid_subject(subject: &str) -> bool {
    let tokens: Vec<&str> = subject.split('.').collect();
    !subject.is_empty()
        && tokens.iter().enumerate().all(|(i, token)| {
            !token.is_empty()
                && !token.chars().any(char::is_whitespace)
                && (*token != ">" || i == tokens.len() - 1)
                && (!token.contains(['*', '>']) || token.len() == 1)
        })
}

/// Whether every subject that matches `filter` also matches `subject`.
pub(crate) fn subject_covers(subject: &str, filter: &str) -> bool {
    let s: Vec<&str> = subject.split('.').collect();
    let f: Vec<&str> = filter.split('.').collect();
    for (i, token) in s.iter().enumerate() {
        match *token {
            ">" => return f.len() > i,
            _ if i >= f.len() => return false,
            "*" => {
                if f[i] == ">" {
                    return false;
                }
            }
            literal => {
                if f[i] != literal {
                    return false;
                }
            }
        }
    }
    s.len() == f.len()
}

/// Whether some subject matches both patterns: what JetStream refuses
/// between the subjects of two streams (10065, "subjects overlap with an
/// existing stream").
pub(crate) fn subjects_overlap(a: &str, b: &str) -> bool {
    let a: Vec<&str> = a.split('.').collect();
    let b: Vec<&str> = b.split('.').collect();
    for i in 0..a.len().max(b.len()) {
        match (a.get(i), b.get(i)) {
            // `>` takes whatever tokens the other has left, if any.
            (Some(&">"), Some(_)) | (Some(_), Some(&">")) => return true,
            (Some(x), Some(y)) if *x == "*" || *y == "*" || x == y => continue,
            _ => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_coverage() {
        assert!(subject_covers("tasks.>", "tasks.devops.>"));
        assert!(subject_covers("tasks.>", "tasks.devops"));
        assert!(!subject_covers("tasks.>", "tasks"));
        assert!(subject_covers("tasks.*.new", "tasks.devops.new"));
        assert!(!subject_covers("tasks.*.new", "tasks.devops.>"));
        assert!(!subject_covers("jobs.>", "tasks.devops.>"));
        assert!(subject_covers("tasks.*", "tasks.*"));
    }

    #[test]
    fn subject_overlap() {
        let overlap = |a: &str, b: &str| {
            // The relation is symmetric.
            assert_eq!(subjects_overlap(a, b), subjects_overlap(b, a), "{a} {b}");
            subjects_overlap(a, b)
        };
        assert!(overlap("tasks.>", "tasks.>"));
        assert!(overlap("tasks.>", "tasks.devops.new"));
        assert!(overlap("tasks.*.new", "tasks.devops.*"));
        assert!(overlap("tasks.*", "tasks.>"));
        assert!(overlap(">", "a"));
        assert!(overlap("*.b", "a.*"));
        assert!(overlap("a.*.c", "a.>"));
        assert!(overlap("a.b", "a.b"));
        assert!(!overlap("tasks.>", "events.>"));
        assert!(!overlap("a.b", "a.b.c"));
        // `>` needs at least one more token.
        assert!(!overlap("tasks.>", "tasks"));
        assert!(!overlap("tasks.*", "tasks"));
        assert!(!overlap("tasks.*", "tasks.a.b"));
        assert!(!overlap("a.*.c", "a.b.d"));
        assert!(!overlap("*", "a.b"));
    }

    #[test]
    fn subjects_are_checked() {
        assert!(valid_subject("tasks.>"));
        assert!(valid_subject("tasks.*.new"));
        assert!(!valid_subject("tasks.>.new"));
        assert!(!valid_subject("tasks..new"));
        assert!(!valid_subject("tasks.de vops"));
    }
}
