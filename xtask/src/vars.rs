//! A scenario's variables (`$session`, `$result.id`, …), their substitution into a
//! step's JSON and strings, and the subset match every check uses.

use std::collections::BTreeMap;

use anyhow::{anyhow, bail, Result};
use serde_json::Value;

/// The variables of one scenario run.
pub type Vars = BTreeMap<String, Value>;

/// The length of the reference at the start of `s` (after its `$`): a name
/// (`[A-Za-z_][A-Za-z0-9_]*`) and any `.field` or `.0` steps; 0 when there is none.
pub fn reference_len(s: &str) -> usize {
    let b = s.as_bytes();
    let word = |from: usize| {
        b[from..]
            .iter()
            .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
            .count()
    };
    if !b
        .first()
        .is_some_and(|c| c.is_ascii_alphabetic() || *c == b'_')
    {
        return 0;
    }
    let mut len = word(0);
    while b.get(len) == Some(&b'.') {
        let n = word(len + 1);
        if n == 0 {
            break;
        }
        len += 1 + n;
    }
    len
}

/// The value of the reference `name.field.0…` (without its `$`).
pub fn lookup(vars: &Vars, reference: &str) -> Result<Value> {
    let mut parts = reference.split('.');
    let name = parts.next().unwrap_or_default();
    let mut v = vars.get(name).ok_or_else(|| {
        anyhow!(
            "no variable `${name}` (bound so far: {})",
            vars.keys()
                .map(|k| format!("${k}"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    })?;
    for p in parts {
        let next = match v {
            Value::Object(m) => m.get(p),
            Value::Array(a) => p.parse::<usize>().ok().and_then(|i| a.get(i)),
            _ => None,
        };
        v = next.ok_or_else(|| anyhow!("`${reference}`: no `{p}` in {}", short(v)))?;
    }
    Ok(v.clone())
}

/// `s` with every `$reference` replaced: a string that is exactly one reference
/// becomes its value (a number stays a number); otherwise each reference is written
/// into the text (strings as they are, other values as JSON). `$$` is a `$`.
pub fn interpolate(s: &str, vars: &Vars) -> Result<Value> {
    if let Some(rest) = s.strip_prefix('$') {
        if reference_len(rest) == rest.len() && !rest.is_empty() {
            return lookup(vars, rest);
        }
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(more) = after.strip_prefix('$') {
            out.push('$');
            rest = more;
            continue;
        }
        let len = reference_len(after);
        if len == 0 {
            out.push('$');
            rest = after;
            continue;
        }
        match lookup(vars, &after[..len])? {
            Value::String(v) => out.push_str(&v),
            v => out.push_str(&v.to_string()),
        }
        rest = &after[len..];
    }
    out.push_str(rest);
    Ok(Value::String(out))
}

/// `s` interpolated, as a string.
pub fn interpolate_str(s: &str, vars: &Vars) -> Result<String> {
    Ok(match interpolate(s, vars)? {
        Value::String(s) => s,
        v => v.to_string(),
    })
}

/// `v` with every string (not the keys) interpolated.
pub fn substitute(v: &Value, vars: &Vars) -> Result<Value> {
    Ok(match v {
        Value::String(s) => interpolate(s, vars)?,
        Value::Array(a) => Value::Array(
            a.iter()
                .map(|x| substitute(x, vars))
                .collect::<Result<_>>()?,
        ),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, x)| Ok((k.clone(), substitute(x, vars)?)))
                .collect::<Result<_>>()?,
        ),
        other => other.clone(),
    })
}

/// Checks that `actual` has everything `expected` has: an object's every key (a
/// `null` also matches a missing key), an array's every element somewhere in the
/// array (in any order), a string equal, or matching it as a pattern where `*` is any
/// run of characters, a number equal in value. The error says where it differs.
pub fn subset(expected: &Value, actual: &Value) -> Result<()> {
    subset_at("", expected, actual)
}

fn subset_at(at: &str, expected: &Value, actual: &Value) -> Result<()> {
    let here = if at.is_empty() { "the value" } else { at };
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            for (k, ev) in e {
                let path = format!("{at}.{k}");
                match a.get(k) {
                    Some(av) => subset_at(&path, ev, av)?,
                    None if ev.is_null() => {}
                    None => bail!("{path} is missing (in {})", short(actual)),
                }
            }
            Ok(())
        }
        (Value::Array(e), Value::Array(a)) => {
            for (i, ev) in e.iter().enumerate() {
                if !a.iter().any(|av| subset_at("", ev, av).is_ok()) {
                    bail!(
                        "{here}: no element matches [{i}] {} (got {})",
                        short(ev),
                        short(actual)
                    );
                }
            }
            Ok(())
        }
        (Value::String(e), Value::String(a)) => {
            if e.contains('*') && glob(e, a) || e == a {
                Ok(())
            } else {
                bail!("{here} is {a:?}, not {e:?}")
            }
        }
        (Value::Number(e), Value::Number(a)) if e.as_f64() == a.as_f64() => Ok(()),
        (e, a) if e == a => Ok(()),
        (e, a) => bail!("{here} is {}, not {}", short(a), short(e)),
    }
}

/// True when `text` matches `pattern`, where `*` is any run of characters.
pub fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if parts.len() == 1 {
        return pattern == text;
    }
    if !text.starts_with(first) || text.len() < first.len() + last.len() {
        return false;
    }
    let mut rest = &text[first.len()..];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    rest.ends_with(last)
}

/// `v` as JSON, cut to a readable length for an error message.
pub fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() <= 300 {
        return s;
    }
    let cut = (0..=300)
        .rev()
        .find(|i| s.is_char_boundary(*i))
        .unwrap_or(0);
    format!("{}…", &s[..cut])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vars() -> Vars {
        let mut v = Vars::new();
        v.insert("session".into(), json!("ses_1"));
        v.insert(
            "result".into(),
            json!({"seq": 4, "lanes": [{"lane": "tool_a"}]}),
        );
        v
    }

    #[test]
    fn references_become_values_or_text() {
        let v = vars();
        assert_eq!(interpolate("$session", &v).unwrap(), json!("ses_1"));
        assert_eq!(interpolate("$result.seq", &v).unwrap(), json!(4));
        assert_eq!(
            interpolate("lane $result.lanes.0.lane.", &v).unwrap(),
            json!("lane tool_a.")
        );
        assert_eq!(
            interpolate("costs $$5 $ each", &v).unwrap(),
            json!("costs $5 $ each")
        );
        let e = interpolate("$nope", &v).unwrap_err().to_string();
        assert!(
            e.contains("no variable `$nope`") && e.contains("$session"),
            "{e}"
        );
        let e = interpolate("$result.nope", &v).unwrap_err().to_string();
        assert!(e.contains("no `nope`"), "{e}");
        assert_eq!(
            substitute(&json!({"session_id": "$session", "n": ["$result.seq"]}), &v).unwrap(),
            json!({"session_id": "ses_1", "n": [4]})
        );
    }

    #[test]
    fn subset_matches_keys_elements_patterns_and_numbers() {
        let actual = json!({"state": "idle", "n": 1.0, "hits": [{"id": 1, "text": "echo: hello"}, {"id": 2}]});
        subset(&json!({"state": "idle"}), &actual).unwrap();
        subset(&json!({"n": 1, "gone": null}), &actual).unwrap();
        subset(&json!({"hits": [{"id": 2}, {"text": "echo: *"}]}), &actual).unwrap();
        let e = subset(&json!({"state": "busy"}), &actual)
            .unwrap_err()
            .to_string();
        assert!(e.contains(".state is \"idle\", not \"busy\""), "{e}");
        let e = subset(&json!({"hits": [{"id": 3}]}), &actual)
            .unwrap_err()
            .to_string();
        assert!(e.contains(".hits: no element matches"), "{e}");
        assert!(subset(&json!({"x": 1}), &actual).is_err());
    }

    #[test]
    fn globs_anchor_at_both_ends() {
        assert!(glob("echo: *", "echo: hi"));
        assert!(glob(
            "*failed*denied*",
            "echo: run_command failed: denied by user"
        ));
        assert!(!glob("*denied", "denied!"));
        assert!(!glob("a*a", "a"));
        assert!(glob("*", ""));
    }
}
