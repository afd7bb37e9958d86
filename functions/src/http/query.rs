//! Query strings as `@medusajs/js-sdk` sends them (`qs.stringify`): brackets for arrays and
//! operators (`groups[]=a`, `groups[0]=a`, `created_at[$gte]=…`), dotted keys up to two
//! levels, repeated keys, and comma lists. Parsing is strict: unknown keys are a 400.

use std::collections::BTreeMap;

use shared::ports::parse_instant;

use super::error::{ApiResult, invalid};

/// One parsed parameter: plain values, or named children (`a[b]=…`, `a.b=…`).
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    Values(Vec<String>),
    Map(BTreeMap<String, Param>),
}

pub type Params = BTreeMap<String, Param>;

fn split_key(raw: &str) -> ApiResult<Vec<String>> {
    let (head, rest) = match raw.find('[') {
        Some(i) => (&raw[..i], &raw[i..]),
        None => (raw, ""),
    };
    let mut path: Vec<String> = head.split('.').map(str::to_owned).collect();
    let mut rest = rest;
    while let Some(stripped) = rest.strip_prefix('[') {
        let end = stripped
            .find(']')
            .ok_or_else(|| invalid(format!("Invalid request: Malformed query key '{raw}'")))?;
        path.push(stripped[..end].to_owned());
        rest = &stripped[end + 1..];
    }
    if !rest.is_empty() || path.iter().take(1).any(String::is_empty) {
        return Err(invalid(format!(
            "Invalid request: Malformed query key '{raw}'"
        )));
    }
    // Array positions (`[]`, `[0]`) add to the parent's values rather than naming a child.
    while path.len() > 1
        && path
            .last()
            .is_some_and(|p| p.is_empty() || p.chars().all(|c| c.is_ascii_digit()))
    {
        path.pop();
    }
    if path.len() > 3 {
        return Err(invalid(format!(
            "Invalid request: Key accessor more than 2 levels deep: {}",
            path.join(".")
        )));
    }
    Ok(path)
}

fn insert(into: &mut Params, path: &[String], value: String, raw: &str) -> ApiResult<()> {
    let Some((first, rest)) = path.split_first() else {
        return Ok(());
    };
    let slot = into.entry(first.clone()).or_insert_with(|| {
        if rest.is_empty() {
            Param::Values(Vec::new())
        } else {
            Param::Map(BTreeMap::new())
        }
    });
    match (slot, rest.is_empty()) {
        (Param::Values(values), true) => {
            values.push(value);
            Ok(())
        }
        (Param::Map(children), false) => insert(children, rest, value, raw),
        _ => Err(invalid(format!(
            "Invalid request: Query key '{raw}' mixes a value and nested keys"
        ))),
    }
}

pub fn parse(raw: Option<&str>) -> ApiResult<Params> {
    let mut params = Params::new();
    for (key, value) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        let path = split_key(&key)?;
        insert(&mut params, &path, value.into_owned(), &key)?;
    }
    Ok(params)
}

/// Rejects keys the route does not know, in Medusa's words.
pub fn reject_unknown(params: &Params, known: &[&str]) -> ApiResult<()> {
    let unknown: Vec<&str> = params
        .keys()
        .map(String::as_str)
        .filter(|k| !known.contains(k))
        .collect();
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(invalid(format!(
            "Invalid request: Unrecognized fields: '{}'",
            unknown.join(", ")
        )))
    }
}

fn single<'a>(params: &'a Params, name: &str) -> ApiResult<Option<&'a str>> {
    match params.get(name) {
        None => Ok(None),
        Some(Param::Values(v)) if v.len() == 1 => Ok(Some(v[0].as_str())),
        Some(Param::Values(v)) if v.is_empty() => Ok(None),
        Some(_) => Err(invalid(format!(
            "Invalid request: Expected type: 'string' for field '{name}', got: 'array'"
        ))),
    }
}

pub fn string(params: &Params, name: &str) -> ApiResult<Option<String>> {
    Ok(single(params, name)?.map(str::to_owned))
}

/// A string or a list (repeated keys, brackets, or one comma-separated value).
pub fn strings(params: &Params, name: &str) -> ApiResult<Option<Vec<String>>> {
    match params.get(name) {
        None => Ok(None),
        Some(Param::Values(values)) => Ok(Some(
            values
                .iter()
                .flat_map(|v| v.split(','))
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
                .collect(),
        )),
        Some(Param::Map(children)) => {
            // `{ $in: [...] }` and `{ $eq: x }` are the operator forms of a list filter.
            let mut out = Vec::new();
            for (op, child) in children {
                match (op.as_str(), child) {
                    ("$in" | "$eq", Param::Values(v)) => {
                        out.extend(v.iter().flat_map(|v| v.split(',')).map(str::to_owned))
                    }
                    _ => {
                        return Err(invalid(format!(
                            "Invalid request: Unsupported operator '{op}' for field '{name}'"
                        )));
                    }
                }
            }
            Ok(Some(out))
        }
    }
}

pub fn number(params: &Params, name: &str) -> ApiResult<Option<usize>> {
    match single(params, name)? {
        None => Ok(None),
        Some(v) => v.trim().parse::<usize>().map(Some).map_err(|_| {
            invalid(format!(
                "Invalid request: Expected type: 'number' for field '{name}', got: '{v}'"
            ))
        }),
    }
}

pub fn boolean(params: &Params, name: &str) -> ApiResult<Option<bool>> {
    match single(params, name)? {
        None => Ok(None),
        Some(v) if v.eq_ignore_ascii_case("true") => Ok(Some(true)),
        Some(v) if v.eq_ignore_ascii_case("false") => Ok(Some(false)),
        Some(v) => Err(invalid(format!(
            "Invalid request: Expected type: 'boolean' for field '{name}', got: '{v}'"
        ))),
    }
}

/// `field[$gt]=…&field[$lte]=…` on a timestamp.
pub fn time_range(params: &Params, name: &str) -> ApiResult<shared::customers::TimeRange> {
    let mut range = shared::customers::TimeRange::default();
    let Some(param) = params.get(name) else {
        return Ok(range);
    };
    let Param::Map(ops) = param else {
        return Err(invalid(format!(
            "Invalid request: Expected an operator map ($gt, $gte, $lt, $lte) for field '{name}'"
        )));
    };
    for (op, value) in ops {
        let Param::Values(values) = value else {
            return Err(invalid(format!(
                "Invalid request: Malformed filter '{name}.{op}'"
            )));
        };
        let raw = values.first().map(String::as_str).unwrap_or_default();
        let instant = parse_instant(raw).ok_or_else(|| {
            invalid(format!(
                "Invalid request: Expected type: 'date' for field '{name}.{op}', got: '{raw}'"
            ))
        })?;
        let slot = match op.as_str() {
            "$gt" => &mut range.gt,
            "$gte" => &mut range.gte,
            "$lt" => &mut range.lt,
            "$lte" => &mut range.lte,
            other => {
                return Err(invalid(format!(
                    "Invalid request: Unsupported operator '{other}' for field '{name}'"
                )));
            }
        };
        *slot = Some(instant);
    }
    Ok(range)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(v: &[&str]) -> Param {
        Param::Values(v.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn sdk_array_forms_all_become_lists() {
        for raw in [
            "groups[]=a&groups[]=b",
            "groups[0]=a&groups[1]=b",
            "groups=a&groups=b",
            "groups=a,b",
            "groups%5B0%5D=a&groups%5B1%5D=b",
        ] {
            let p = parse(Some(raw)).unwrap();
            assert_eq!(
                strings(&p, "groups").unwrap(),
                Some(vec!["a".into(), "b".into()]),
                "{raw}"
            );
        }
    }

    #[test]
    fn operators_nest() {
        let p = parse(Some(
            "created_at[$gte]=2024-01-01&created_at[$lt]=2024-02-01T00:00:00Z",
        ))
        .unwrap();
        let range = time_range(&p, "created_at").unwrap();
        assert_eq!(range.gte.as_deref(), Some("2024-01-01T00:00:00.000Z"));
        assert_eq!(range.lt.as_deref(), Some("2024-02-01T00:00:00.000Z"));
        assert!(time_range(&parse(Some("created_at[$gte]=soon")).unwrap(), "created_at").is_err());
        assert!(
            time_range(
                &parse(Some("created_at[$near]=2024-01-01")).unwrap(),
                "created_at"
            )
            .is_err()
        );
    }

    #[test]
    fn dotted_keys_and_depth_limit() {
        let p = parse(Some("groups.id=x")).unwrap();
        let Param::Map(m) = &p["groups"] else {
            panic!("expected a map")
        };
        assert_eq!(m["id"], values(&["x"]));
        assert!(parse(Some("a[b][c][d]=1")).is_err());
        assert!(parse(Some("a[b=1")).is_err());
    }

    #[test]
    fn unknown_keys_and_bad_numbers_are_rejected_in_medusas_words() {
        let p = parse(Some("foo=bar&limit=abc")).unwrap();
        let err = reject_unknown(&p, &["limit"]).unwrap_err();
        assert!(format!("{:?}", err.0).contains("Unrecognized fields: 'foo'"));
        let err = number(&p, "limit").unwrap_err();
        assert!(
            format!("{:?}", err.0)
                .contains("Expected type: 'number' for field 'limit', got: 'abc'")
        );
        assert_eq!(
            boolean(&parse(Some("x=TRUE")).unwrap(), "x").unwrap(),
            Some(true)
        );
    }
}
