//! `{{ resource.property:path }}` templates inside string values.

use std::ops::Range;

#[derive(Debug, PartialEq)]
pub enum Part {
    Text(String),
    Reference(TemplateRef),
}

#[derive(Debug, PartialEq)]
pub struct TemplateRef {
    pub resource: String,
    pub property: Option<String>,
    /// Empty for the whole message (`:.` or `:` or no path at all).
    pub path: Vec<String>,
    /// Byte range of the `{{ ... }}` within the string.
    pub range: Range<usize>,
}

#[derive(Debug, PartialEq)]
pub struct TemplateError {
    pub message: String,
    pub range: Range<usize>,
}

/// Splits a string into text and references. A string without `{{` is a single text part.
pub fn parse(input: &str) -> Result<Vec<Part>, TemplateError> {
    let mut parts = Vec::new();
    let mut rest = 0;
    while let Some(open) = input[rest..].find("{{").map(|i| i + rest) {
        if open > rest {
            parts.push(Part::Text(input[rest..open].to_string()));
        }
        let Some(close) = input[open..].find("}}").map(|i| i + open) else {
            return Err(TemplateError { message: "unclosed `{{`".into(), range: open..input.len() });
        };
        let range = open..close + 2;
        parts.push(Part::Reference(reference(input[open + 2..close].trim(), range)?));
        rest = close + 2;
    }
    if rest < input.len() {
        parts.push(Part::Text(input[rest..].to_string()));
    }
    Ok(parts)
}

fn reference(body: &str, range: Range<usize>) -> Result<TemplateRef, TemplateError> {
    let error = |message: String| TemplateError { message, range: range.clone() };
    let (head, path) = match body.split_once(':') {
        Some((head, path)) => (head, path.trim()),
        None => (body, ""),
    };
    let (resource, property) = match head.split_once('.') {
        Some((resource, property)) => (resource.trim(), Some(property.trim().to_string())),
        None => (head.trim(), None),
    };
    if resource.is_empty() {
        return Err(error(format!("`{{{{ {body} }}}}` names no resource")));
    }
    if !resource.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        return Err(error(format!("`{resource}` is not a resource name")));
    }
    let path = match path {
        "" | "." => Vec::new(),
        path => {
            let names: Vec<String> = path.split('.').map(|s| s.trim().to_string()).collect();
            if names.iter().any(String::is_empty) {
                return Err(error(format!("`{path}` is not a field path")));
            }
            names
        }
    };
    Ok(TemplateRef { resource: resource.to_string(), property, path, range })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_reference() {
        let parts = parse("{{ input:id }}").unwrap();
        assert_eq!(
            parts,
            vec![Part::Reference(TemplateRef {
                resource: "input".into(),
                property: None,
                path: vec!["id".into()],
                range: 0..14
            })]
        );
    }

    #[test]
    fn property_and_nested_path() {
        let parts = parse("{{ call.request:address.street }}").unwrap();
        let Part::Reference(r) = &parts[0] else { panic!() };
        assert_eq!(r.resource, "call");
        assert_eq!(r.property.as_deref(), Some("request"));
        assert_eq!(r.path, vec!["address", "street"]);
    }

    #[test]
    fn interpolation() {
        let parts = parse("Bearer {{ input.header:Token }}!").unwrap();
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[0], Part::Text("Bearer ".into()));
        assert_eq!(parts[2], Part::Text("!".into()));
    }

    #[test]
    fn whole_message() {
        for text in ["{{ user:. }}", "{{ user: }}", "{{ user }}"] {
            let Part::Reference(r) = &parse(text).unwrap()[0] else { panic!() };
            assert!(r.path.is_empty(), "{text}");
        }
    }

    #[test]
    fn errors() {
        assert!(parse("{{ input:id").is_err());
        assert!(parse("{{ :id }}").is_err());
        assert!(parse("{{ input:a..b }}").is_err());
        assert_eq!(parse("plain").unwrap(), vec![Part::Text("plain".into())]);
    }
}
