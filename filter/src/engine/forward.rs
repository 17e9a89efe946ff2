//! A proxy's rewrite rules, compiled once when the plan is loaded, and the path they give the
//! forwarded request.

use regex_lite::Regex;
use semaphore_plan::{Flow, Rewrite};

/// One `rewrite "pattern" "template"` rule, ready to run.
pub(super) struct Rule {
    regex: Regex,
    /// The template in the regex's own replacement syntax: `<name>` as `${name}`, `$` as `$$`.
    replacement: String,
}

/// The rules of a flow, in order. A pattern that does not compile, or a template naming a group
/// the pattern lacks, refuses the flow's rules: the compiler refuses both, so only a plan from
/// elsewhere has them.
pub(super) fn compile(flow: &Flow) -> Result<Vec<Rule>, String> {
    let Some(forward) = &flow.forward else { return Ok(Vec::new()) };
    forward.rewrites.iter().map(rule).collect()
}

fn rule(rewrite: &Rewrite) -> Result<Rule, String> {
    let regex = Regex::new(&rewrite.anchored_pattern())
        .map_err(|e| format!("the rewrite pattern `{}` is invalid: {e}", rewrite.pattern))?;
    let mut replacement = String::new();
    let mut rest = rewrite.template.as_str();
    while let Some((text, after)) = rest.split_once('<') {
        replacement.push_str(&text.replace('$', "$$"));
        // A `<` that no `>` closes is text, as the compiler reads it.
        let Some((name, tail)) = after.split_once('>') else {
            replacement.push('<');
            rest = after;
            continue;
        };
        if !regex.capture_names().flatten().any(|group| group == name) {
            return Err(format!(
                "the rewrite template `{}` uses `<{name}>`, which its pattern does not capture",
                rewrite.template
            ));
        }
        replacement.push_str("${");
        replacement.push_str(name);
        replacement.push('}');
        rest = tail;
    }
    replacement.push_str(&rest.replace('$', "$$"));
    Ok(Rule { regex, replacement })
}

/// The path part of `path_and_query` rewritten by the first rule that matches it whole, or kept
/// when none does; the query string stays as it came.
pub(super) fn rewrite(rules: &[Rule], path_and_query: &str) -> String {
    let (path, query) = match path_and_query.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (path_and_query, None),
    };
    let mut rewritten = String::new();
    match rules.iter().find_map(|rule| Some((rule, rule.regex.captures(path)?))) {
        Some((rule, captures)) => captures.expand(&rule.replacement, &mut rewritten),
        None => rewritten.push_str(path),
    }
    if let Some(query) = query {
        rewritten.push('?');
        rewritten.push_str(query);
    }
    rewritten
}
