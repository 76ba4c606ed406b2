//! The Query protocol's request side: parameters as ordered `Name=value` pairs, with the
//! `Prefix.N` and `Prefix.N.Field` forms lists and structures take, encoded as a form body.
//!
//! Pure; knows nothing about any service's actions.

use super::sigv4::uri_encode;

/// The parameters of one Query action (besides `Action` and `Version`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params {
    /// In insertion order; AWS does not care about order, tests do.
    pairs: Vec<(String, String)>,
}

impl Params {
    /// No parameters.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `name=value`.
    pub fn set(mut self, name: impl Into<String>, value: impl ToString) -> Self {
        self.pairs.push((name.into(), value.to_string()));
        self
    }

    /// Adds `name=value` when there is a value.
    pub fn set_opt<T: ToString>(self, name: &str, value: Option<T>) -> Self {
        match value {
            Some(v) => self.set(name, v),
            None => self,
        }
    }

    /// Adds `prefix.1=a`, `prefix.2=b`, ... (Query lists are numbered from 1).
    pub fn list<T: ToString>(mut self, prefix: &str, items: impl IntoIterator<Item = T>) -> Self {
        for (i, item) in items.into_iter().enumerate() {
            self = self.set(format!("{prefix}.{}", i + 1), item);
        }
        self
    }

    /// Adds `prefix.N.field=value` for each `(field, value)` of each item: a list of
    /// structures, such as `Filter.1.Name`, `Filter.1.Value.1`.
    pub fn structs<I, F>(mut self, prefix: &str, items: I) -> Self
    where
        I: IntoIterator<Item = F>,
        F: IntoIterator<Item = (String, String)>,
    {
        for (i, fields) in items.into_iter().enumerate() {
            for (field, value) in fields {
                self = self.set(format!("{prefix}.{}.{field}", i + 1), value);
            }
        }
        self
    }

    /// The value of `name`, if set (for tests and logs).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every pair, in order.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }

    /// The form body: `Action=…&Version=…&` then the parameters, percent-encoded.
    pub fn form(&self, action: &str, version: &str) -> String {
        let mut body = format!(
            "Action={}&Version={}",
            uri_encode(action.as_bytes()),
            uri_encode(version.as_bytes())
        );
        for (name, value) in &self.pairs {
            body.push('&');
            body.push_str(&uri_encode(name.as_bytes()));
            body.push('=');
            body.push_str(&uri_encode(value.as_bytes()));
        }
        body
    }
}

/// Decodes a form body back into pairs (the inverse of [`Params::form`]; for tests of plugins
/// that want to check what they sent).
pub fn decode_form(body: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(body);
    text.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex_at = |j: usize| bytes.get(j).and_then(|b| char::from(*b).to_digit(16));
        match bytes[i] {
            b'%' => {
                if let (Some(hi), Some(lo)) = (hex_at(i + 1), hex_at(i + 2)) {
                    out.push((hi * 16 + lo) as u8);
                    i += 3;
                    continue;
                }
                out.push(b'%');
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_and_structures_are_numbered_from_one() {
        let params = Params::new()
            .list("InstanceId", ["i-1", "i-2"])
            .structs(
                "Filter",
                [vec![
                    ("Name".to_string(), "tag:csmp:tenant".to_string()),
                    ("Value.1".to_string(), "acme corp".to_string()),
                ]],
            )
            .set_opt("MaxResults", Some(5))
            .set_opt::<u32>("NextToken", None);
        let form = params.form("DescribeInstances", "2016-11-15");
        assert_eq!(
            form,
            "Action=DescribeInstances&Version=2016-11-15&InstanceId.1=i-1&InstanceId.2=i-2\
             &Filter.1.Name=tag%3Acsmp%3Atenant&Filter.1.Value.1=acme%20corp&MaxResults=5"
        );
        let decoded = decode_form(form.as_bytes());
        assert_eq!(decoded[5], ("Filter.1.Value.1".into(), "acme corp".into()));
        assert_eq!(params.get("InstanceId.2"), Some("i-2"));
    }
}
