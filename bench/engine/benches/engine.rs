//! The engine's work per request of the benchmark flow, without Envoy: decode the input, build
//! three requests, merge three responses, encode the output.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use semaphore_engine_bench::{answer, engine, finish, input, start, Recorder};

fn per_request(c: &mut Criterion) {
    let engine = engine();
    let input = input();
    let answers = [answer("a"), answer("b"), answer("c")];

    let mut host = Recorder::default();
    let mut execution = start(&engine, &input, &mut host);
    let reply = finish(&mut execution, &mut host, &answers);
    assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
    println!(
        "input {} bytes, each answer {} bytes, output {} bytes",
        input.len(),
        answers[0].len(),
        reply.body.len()
    );

    let mut group = c.benchmark_group("engine");
    group.bench_function("whole request", |b| {
        b.iter(|| {
            let mut host = Recorder::default();
            let mut execution = start(&engine, &input, &mut host);
            finish(&mut execution, &mut host, &answers)
        })
    });
    group.bench_function("decode input, build two requests", |b| {
        b.iter(|| {
            let mut host = Recorder::default();
            start(&engine, &input, &mut host)
        })
    });
    group.bench_function("merge three responses, build one request, encode output", |b| {
        b.iter_batched(
            || {
                let mut host = Recorder::default();
                let execution = start(&engine, &input, &mut host);
                (execution, host)
            },
            |(mut execution, mut host)| finish(&mut execution, &mut host, &answers),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, per_request);
criterion_main!(benches);
