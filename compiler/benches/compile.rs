//! Compiling a generated configuration of 1,000 flows (three resources each, a dependency, a
//! condition and an output), from HCL and protos to the encoded plan.

use std::fmt::Write as _;
use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion};

const FLOWS: usize = 1000;

fn write_config(dir: &Path) {
    let proto_dir = dir.join("proto");
    std::fs::create_dir_all(&proto_dir).unwrap();
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/protos/catalog.proto");
    std::fs::copy(source, proto_dir.join("catalog.proto")).unwrap();
    let mut hcl = String::from("protobuffers = [\"./proto/*.proto\"]\n\n");
    for i in 0..FLOWS {
        let _ = write!(
            hcl,
            r#"
endpoint "flow{i}" "http" {{
  endpoint = "/flows/{i}/:id"
  method   = "GET"
}}

flow "flow{i}" {{
  input "catalog.Query" {{
    header = ["Authorization"]
  }}

  resource "item" {{
    request "catalog.Items" "Get" {{
      id = "{{{{ input:id }}}}"

      header {{
        Authorization = "{{{{ input.header:Authorization }}}}"
      }}
    }}
  }}

  resource "related" {{
    request "catalog.Items" "List" {{
      kind  = "{{{{ item:name }}}}"
      limit = "{{{{ input:limit }}}}"
    }}
  }}

  if "{{{{ item:available }}}}" {{
    resource "audit" {{
      request "catalog.Audit" "Record" {{
        item   = "{{{{ item:id }}}}"
        action = "viewed {i}"
      }}
    }}
  }}

  output "catalog.Summary" {{
    id     = "{{{{ item:id }}}}"
    name   = "{{{{ item:name }}}}"
    status = "{{{{ item:status }}}}"
    note   = "{{{{ len(related:items) }}}} related"

    message "price" {{
      cents    = "{{{{ item:price.cents }}}}"
      currency = "EUR"
    }}
  }}
}}
"#
        );
    }
    std::fs::write(dir.join("config.hcl"), hcl).unwrap();
}

fn compile_1000_flows(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path());
    let config = dir.path().join("config.hcl");
    let compiled = semaphore_compiler::compile_file(&config).unwrap();
    assert_eq!(compiled.plan.flows.len(), FLOWS);
    println!("plan of {FLOWS} flows: {} bytes", compiled.plan.encode_to_bytes().len());

    let mut group = c.benchmark_group("compile");
    group.sample_size(10);
    group.bench_function("1000 flows", |b| {
        b.iter(|| {
            let compiled = semaphore_compiler::compile_file(&config).unwrap();
            compiled.plan.encode_to_bytes()
        })
    });
    group.finish();
}

criterion_group!(benches, compile_1000_flows);
criterion_main!(benches);
