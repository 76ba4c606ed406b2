//! Reading AWS's XML answers: element lookups by local name (AWS documents carry a default
//! namespace that no caller cares about), text of children, lists of `member`/`item`.
//!
//! A thin layer over `roxmltree` (re-exported as [`roxmltree`]); knows no service's shapes.

pub use roxmltree;
use roxmltree::Node;

use crate::PluginError;

/// Parses `text`, or says which action's answer was not XML.
pub fn parse<'a>(text: &'a str, what: &str) -> Result<roxmltree::Document<'a>, PluginError> {
    roxmltree::Document::parse(text).map_err(|e| {
        let start: String = text.chars().take(120).collect();
        PluginError::permanent(format!(
            "{what} answered something that is not XML ({e}): {start}; check that the endpoint is an AWS API"
        ))
    })
}

/// The first child element named `name`.
pub fn child<'a, 'i>(node: Node<'a, 'i>, name: &str) -> Option<Node<'a, 'i>> {
    node.children()
        .find(|c| c.is_element() && c.tag_name().name() == name)
}

/// The child elements named `name`.
pub fn children<'a, 'i: 'a>(
    node: Node<'a, 'i>,
    name: &'a str,
) -> impl Iterator<Item = Node<'a, 'i>> + 'a {
    node.children()
        .filter(move |c| c.is_element() && c.tag_name().name() == name)
}

/// The element at `path` of child names below `node`.
pub fn at<'a, 'i>(node: Node<'a, 'i>, path: &[&str]) -> Option<Node<'a, 'i>> {
    path.iter().try_fold(node, |n, name| child(n, name))
}

/// The text of the element at `path` below `node` (trimmed; `None` when absent or empty).
pub fn text<'a>(node: Node<'a, '_>, path: &[&str]) -> Option<&'a str> {
    at(node, path)
        .and_then(|n| n.text())
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// Like [`text`], owned.
pub fn string(node: Node<'_, '_>, path: &[&str]) -> Option<String> {
    text(node, path).map(String::from)
}

/// The text at `path` parsed as a number.
pub fn number<T: std::str::FromStr>(node: Node<'_, '_>, path: &[&str]) -> Option<T> {
    text(node, path).and_then(|t| t.parse().ok())
}

/// The elements of the list at `path`: its `member` (most Query APIs) or `item` (EC2)
/// children.
pub fn list<'a, 'i: 'a>(node: Node<'a, 'i>, path: &[&str]) -> Vec<Node<'a, 'i>> {
    match at(node, path) {
        Some(list) => list
            .children()
            .filter(|c| c.is_element() && matches!(c.tag_name().name(), "member" | "item"))
            .collect(),
        None => Vec::new(),
    }
}

/// The first element named `name` anywhere below `node` (document order).
pub fn find<'a, 'i>(node: Node<'a, 'i>, name: &str) -> Option<Node<'a, 'i>> {
    node.descendants()
        .find(|d| d.is_element() && d.tag_name().name() == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_namespaced_documents_by_local_name() -> Result<(), PluginError> {
        let doc = parse(
            r#"<DescribeThingsResponse xmlns="http://example.com/doc/2011-01-01/">
                 <Result><Things>
                   <member><Name> a </Name><Size>3</Size></member>
                   <member><Name>b</Name><Size>x</Size></member>
                 </Things><Empty/></Result>
               </DescribeThingsResponse>"#,
            "DescribeThings",
        )?;
        let root = doc.root_element();
        let things = list(root, &["Result", "Things"]);
        assert_eq!(things.len(), 2);
        assert_eq!(text(things[0], &["Name"]), Some("a"));
        assert_eq!(number::<u32>(things[0], &["Size"]), Some(3));
        assert_eq!(number::<u32>(things[1], &["Size"]), None);
        assert_eq!(text(root, &["Result", "Empty"]), None);
        assert!(list(root, &["Result", "Nothing"]).is_empty());
        assert_eq!(find(root, "Name").and_then(|n| n.text()), Some(" a "));
        Ok(())
    }

    #[test]
    fn not_xml_is_a_permanent_error_that_says_so() {
        let err = parse("<html", "DescribeThings").err();
        assert!(
            matches!(&err, Some(PluginError::Permanent(m)) if m.contains("not XML")),
            "{err:?}"
        );
    }
}
