//! A proxy's forwarding: its rewrite rules, compiled once when the plan is loaded, and how its
//! request goes on to its service.

use crate::engine::value::Value;
use regex_lite::Regex;
use semaphore_plan::{Flow, Forward, Plan, Rewrite};

use super::headers;
use super::host::Forwarding;
use super::Failure;

/// How the proxy's request goes on: to its service's cluster, its path rewritten by `rules`
/// under the service's base path, with the proxy's headers evaluated.
pub(super) fn forwarding(
    plan: &Plan,
    forward: &Forward,
    rules: &[Rule],
    request_headers: &[(String, String)],
    evaluate: impl Fn(&semaphore_plan::Value) -> Option<Value>,
) -> Result<Forwarding, Failure> {
    let Some(service) = plan.services.get(forward.service as usize) else {
        return Err(Failure::new(500, "the plan names a service it does not define"));
    };
    let Some((_, original)) = request_headers.iter().find(|(name, _)| name == ":path") else {
        return Err(Failure::new(400, "the request has no path"));
    };
    let path = format!("{}{}", service.base_path, rewrite(rules, original));
    let headers = headers::evaluate(&forward.headers, evaluate)?;
    Ok(Forwarding { cluster: service.cluster.clone(), authority: service.authority.clone(), path, headers })
}

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
fn rewrite(rules: &[Rule], path_and_query: &str) -> String {
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
