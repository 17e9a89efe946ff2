//! What of each call the flow's templates read: of its answer, so that the filter decodes only
//! those fields, and reads the answer's headers only when some template does (an upstream's
//! answer often carries far more than a flow uses); and whether anything reads its request once
//! sent, so that the filter keeps no copy of it when nothing does.

use std::collections::BTreeSet;

use plan::visit;
use semaphore_plan as plan;

/// Sets each call's `response_fields`: the top-level fields of its response that some
/// reference reads (`{{ node:field... }}`), or `None` when one reads the whole response;
/// `response_headers_unread` when no reference reads its headers (`{{ node.header:name }}`);
/// and `request_unread` when no reference reads its request (`{{ node.request:path }}`) and it
/// has no rollback.
pub(super) fn set_reads(flow: &mut plan::Flow, messages: &[plan::MessageLayout]) {
    let mut read: Vec<Option<BTreeSet<String>>> = vec![Some(BTreeSet::new()); flow.nodes.len()];
    let mut headers_read = vec![false; flow.nodes.len()];
    let mut request_read = vec![false; flow.nodes.len()];
    visit::references(flow, &mut |reference| {
        if matches!(reference.slot, plan::INPUT_SLOT | plan::ERROR_SLOT | plan::ITEM_SLOT) {
            return;
        }
        let index = (reference.slot as usize).checked_sub(1);
        if reference.property() == plan::Property::Header {
            if let Some(read) = index.and_then(|index| headers_read.get_mut(index)) {
                *read = true;
            }
            return;
        }
        if reference.property() == plan::Property::Request {
            if let Some(read) = index.and_then(|index| request_read.get_mut(index)) {
                *read = true;
            }
            return;
        }
        if reference.property() != plan::Property::Response {
            return;
        }
        let Some(node) = index.and_then(|index| read.get_mut(index)) else {
            return;
        };
        match (node.as_mut(), reference.path.first()) {
            (Some(fields), Some(field)) => {
                fields.insert(field.clone());
            }
            (Some(_), None) => *node = None,
            (None, _) => {}
        }
    });
    for (((node, read), headers_read), request_read) in
        flow.nodes.iter_mut().zip(read).zip(headers_read).zip(request_read)
    {
        let has_rollback = node.rollback.is_some();
        let Some(call) = node.call.as_mut() else { continue };
        call.response_headers_unread = !headers_read;
        call.request_unread = !request_read && !has_rollback;
        let Some(layout) = messages.get(call.response_message as usize) else { continue };
        call.response_fields = read.map(|names| plan::FieldSet {
            fields: (0..layout.fields.len() as u32)
                .filter(|&index| layout.fields.get(index as usize).is_some_and(|f| names.contains(&f.name)))
                .collect(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(slot: u32, path: &[&str]) -> plan::Value {
        reference_to(plan::Property::Response, slot, path)
    }

    fn reference_to(property: plan::Property, slot: u32, path: &[&str]) -> plan::Value {
        plan::Value {
            kind: Some(plan::ValueKind::Reference(plan::Reference {
                slot,
                property: property as i32,
                path: path.iter().map(|p| p.to_string()).collect(),
                absent: None,
            })),
        }
    }

    fn field(index: u32, value: plan::Value) -> plan::FieldTemplate {
        plan::FieldTemplate { field: index, value: Some(value), typed: false }
    }

    fn call(response_message: u32) -> Option<plan::Call> {
        Some(plan::Call { response_message, ..Default::default() })
    }

    #[test]
    fn a_call_is_read_for_the_fields_headers_and_request_templates_name_and_whole_when_one_names_none() {
        let layout = |names: &[&str]| plan::MessageLayout {
            name: "M".into(),
            fields: names
                .iter()
                .map(|n| plan::FieldLayout { name: n.to_string(), ..Default::default() })
                .collect(),
        };
        let messages = vec![layout(&["id", "name", "items", "total"]), layout(&["order"])];
        let mut flow = plan::Flow {
            nodes: vec![
                // `a`: read for `id` by `b`, `items.sku` by the output and in a condition.
                plan::Node { call: call(0), ..Default::default() },
                plan::Node {
                    call: Some(plan::Call {
                        response_message: 0,
                        request: Some(plan::MessageTemplate {
                            fields: vec![field(0, reference(1, &["id"]))],
                        }),
                        ..Default::default()
                    }),
                    condition: Some(reference(1, &["items", "sku"])),
                    ..Default::default()
                },
                // `c`: read whole by the output; its rollback quotes its request.
                plan::Node { call: call(0), rollback: call(0), ..Default::default() },
                // `d`: read by nothing.
                plan::Node { call: call(0), ..Default::default() },
            ],
            output: Some(plan::Output {
                message: 1,
                body: Some(plan::MessageTemplate { fields: vec![field(0, reference(3, &[]))] }),
                // `b`'s answer is read for a header, not for a field; `a`'s request for a field.
                headers: vec![
                    plan::HeaderTemplate {
                        name: "etag".into(),
                        value: Some(reference_to(plan::Property::Header, 2, &["etag"])),
                    },
                    plan::HeaderTemplate {
                        name: "x-order".into(),
                        value: Some(reference_to(plan::Property::Request, 1, &["id"])),
                    },
                ],
            }),
            ..Default::default()
        };
        set_reads(&mut flow, &messages);
        let read: Vec<_> = flow
            .nodes
            .iter()
            .map(|node| node.call.as_ref().and_then(|c| c.response_fields.as_ref()).map(|f| f.fields.clone()))
            .collect();
        assert_eq!(read, [Some(vec![0, 2]), Some(vec![]), None, Some(vec![])]);
        let headers_unread: Vec<_> =
            flow.nodes.iter().map(|node| node.call.as_ref().map(|c| c.response_headers_unread)).collect();
        assert_eq!(headers_unread, [Some(true), Some(false), Some(true), Some(true)]);
        let requests_unread: Vec<_> =
            flow.nodes.iter().map(|node| node.call.as_ref().map(|c| c.request_unread)).collect();
        assert_eq!(requests_unread, [Some(false), Some(true), Some(false), Some(true)]);
    }
}
