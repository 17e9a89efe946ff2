use std::collections::BTreeMap;
mod watch;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use semaphore_compiler::envoy::{self, EnvoyOptions};
use semaphore_compiler::inspect::{self, GraphFormat};
use semaphore_compiler::istio;
use semaphore_compiler::openapi::{self, ApiInfo};
use semaphore_compiler::{compile_file_with, ClusterNaming, CompileOptions, Compiled};

/// Semaphore for Envoy: compile HCL flows over protobuf schemas into a plan that the
/// semaphore_filter.wasm Envoy filter runs.
#[derive(Parser)]
#[command(name = "semaphore", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check a configuration and report every error, without writing anything.
    Check {
        /// The configuration file (HCL).
        config: PathBuf,
    },
    /// Compile a configuration into a binary plan.
    Compile {
        /// The configuration file (HCL).
        config: PathBuf,
        #[command(flatten)]
        clusters: ClusterArgs,
        /// Where to write the plan.
        #[arg(short, long, default_value = "plan.bin")]
        output: PathBuf,
    },
    /// Print a compiled plan as readable text: services, endpoints, flows, nodes, dependencies,
    /// templates.
    Inspect {
        /// A plan written by `semaphore compile`.
        plan: PathBuf,
    },
    /// Print each flow's dependency graph: nodes, edges, conditions and rollbacks.
    Graph {
        /// The configuration file (HCL).
        config: PathBuf,
        /// Only this flow.
        #[arg(long)]
        flow: Option<String>,
        #[arg(long, value_enum, default_value = "dot")]
        format: GraphFormat,
    },
    /// Write an Envoy 1.40 bootstrap that runs the configuration's flows.
    Envoy {
        /// The configuration file (HCL).
        config: PathBuf,
        #[command(flatten)]
        clusters: ClusterArgs,
        #[command(flatten)]
        envoy: EnvoyArgs,
        /// Where to write the bootstrap; standard output if omitted.
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Deliver the filter's configuration over ECDS from this file instead of inline: write
        /// a new one beside it and move it over this one, and Envoy swaps the plan in without a
        /// restart (`semaphore run --watch` does so on every change).
        #[arg(long)]
        filter_config: Option<PathBuf>,
    },
    /// Compile, write an Envoy bootstrap and run Envoy with it (ENVOY_BIN, else the project's
    /// .venv, else `envoy` on PATH).
    Run {
        /// The configuration file (HCL).
        config: PathBuf,
        #[command(flatten)]
        envoy: EnvoyArgs,
        /// Recompile whenever a file in the configuration's folder changes and hand Envoy the new
        /// plan without restarting it; a configuration that does not compile keeps the old plan.
        #[arg(long)]
        watch: bool,
    },
    /// Write the Istio manifests that run the configuration's flows in sidecars or a gateway: a
    /// WasmPlugin, or an EnvoyFilter where an endpoint takes a request body, and ServiceEntries
    /// for hosts outside the mesh. Clusters are named as Istio names them.
    Istio {
        /// The configuration file (HCL).
        config: PathBuf,
        /// Where Istio pulls the module: oci://registry/semaphore-filter:tag, https://... or
        /// file://...
        #[arg(long)]
        module: String,
        /// A label of the workloads that run the flows, `key=value`; repeat for more.
        #[arg(long = "selector", value_parser = parse_label)]
        selector: Vec<(String, String)>,
        /// The namespace of the manifests, and of short Kubernetes host names.
        #[arg(long, default_value = "default")]
        namespace: String,
        /// The flows run in an ingress gateway, not in sidecars.
        #[arg(long)]
        gateway: bool,
        /// Where to write the manifests; standard output if omitted.
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Generate a document from a configuration.
    Generate {
        #[command(subcommand)]
        document: Document,
    },
}

#[derive(Subcommand)]
enum Document {
    /// An OpenAPI 3.0 document of the configuration's HTTP endpoints: their paths, parameters,
    /// request bodies, responses and the schemas of the flows' messages.
    Openapi3 {
        /// The configuration file (HCL).
        config: PathBuf,
        /// `info.title`; defaults to the configuration's file name without its extension.
        #[arg(long)]
        title: Option<String>,
        /// `info.version`, the version of the API.
        #[arg(long = "version", default_value = "1.0.0")]
        api_version: String,
        /// How the document is written.
        #[arg(long, value_enum, default_value = "json")]
        format: DocumentFormat,
        /// Where to write the document; standard output if omitted.
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// The GraphQL schema the configuration's `graphql` endpoints serve, in GraphQL's schema
    /// definition language.
    Graphql {
        /// The configuration file (HCL).
        config: PathBuf,
        /// Where to write the schema; standard output if omitted.
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum DocumentFormat {
    Json,
    Yaml,
}

#[derive(clap::Args)]
struct ClusterArgs {
    /// How services that name no `cluster` name theirs: `host-port` (`users:9090`, the clusters
    /// `semaphore envoy` writes) or `istio` (`outbound|9090||users.default.svc.cluster.local`).
    #[arg(long, value_enum, default_value = "host-port")]
    clusters: ClusterStyle,
    /// With `--clusters istio`: the namespace short Kubernetes host names are in.
    #[arg(long, default_value = "default")]
    namespace: String,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ClusterStyle {
    HostPort,
    Istio,
}

impl ClusterArgs {
    fn options(&self) -> CompileOptions {
        let clusters = match self.clusters {
            ClusterStyle::HostPort => ClusterNaming::HostPort,
            ClusterStyle::Istio => ClusterNaming::Istio { namespace: self.namespace.clone() },
        };
        CompileOptions { clusters }
    }
}

#[derive(clap::Args)]
struct EnvoyArgs {
    /// The filter module; defaults to the one built beside this binary
    /// (target/wasm32-unknown-unknown/release/semaphore_filter.wasm).
    #[arg(long, env = "SEMAPHORE_WASM")]
    wasm: Option<PathBuf>,
    /// Listener address; defaults to the configuration's `http.address`, else 127.0.0.1:8080.
    #[arg(long)]
    listen: Option<String>,
    /// The gRPC listener's address; defaults to the configuration's `grpc.address`, if any (else
    /// gRPC is served on the first listener only).
    #[arg(long)]
    grpc_listen: Option<String>,
    /// The GraphQL listener's address, for a configuration with `graphql { address }`; defaults
    /// to that address (without one, the schema is served at its path on the first listener).
    #[arg(long)]
    graphql_listen: Option<String>,
    /// Envoy admin address.
    #[arg(long, default_value = envoy::DEFAULT_ADMIN)]
    admin: String,
}

fn main() -> ExitCode {
    match execute(Cli::parse().command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            if !message.is_empty() {
                eprintln!("error: {message}");
            }
            ExitCode::FAILURE
        }
    }
}

/// Runs a command; its error is the message to print, empty when diagnostics already said it.
fn execute(command: Command) -> Result<(), String> {
    match command {
        Command::Check { config } => compile(&config).map(|_| eprintln!("{}: ok", config.display())),
        Command::Compile { config, clusters, output } => {
            compile_with(&config, &clusters.options()).and_then(|compiled| {
                let bytes = compiled.plan.encode_to_bytes();
                std::fs::write(&output, &bytes)
                    .map_err(|e| format!("cannot write {}: {e}", output.display()))?;
                eprintln!("wrote {} ({} bytes)", output.display(), bytes.len());
                Ok(())
            })
        }
        Command::Inspect { plan } => std::fs::read(&plan)
            .map_err(|e| format!("cannot read {}: {e}", plan.display()))
            .and_then(|bytes| {
                let decoded = semaphore_compiler::Plan::decode_from_bytes(&bytes)
                    .map_err(|e| format!("{}: {e}", plan.display()))?;
                print!("{}", inspect::text(&decoded, bytes.len()));
                Ok(())
            }),
        Command::Graph { config, flow, format } => compile(&config).and_then(|compiled| {
            if let Some(name) = &flow {
                if !compiled.plan.flows.iter().any(|f| &f.name == name) {
                    return Err(format!("{} has no flow `{name}`", config.display()));
                }
            }
            print!("{}", inspect::graph(&compiled.plan, flow.as_deref(), format));
            Ok(())
        }),
        Command::Envoy { config, clusters, envoy, output, filter_config } => {
            compile_with(&config, &clusters.options()).and_then(|compiled| {
                let mut options = envoy.options()?;
                if let Some(file) = &filter_config {
                    std::fs::write(file, envoy::filter_config_resource(&compiled, &options.wasm))
                        .map_err(|e| format!("cannot write {}: {e}", file.display()))?;
                    options.filter_config_file = Some(file.clone());
                }
                let yaml = envoy::bootstrap(&compiled, &options);
                write_or_print(&yaml, output.as_deref())
            })
        }
        Command::Run { config, envoy, watch: false } => {
            compile(&config).and_then(|compiled| run(&compiled, &envoy))
        }
        Command::Run { config, envoy, watch: true } => compile(&config)
            .and_then(|compiled| watch::run(&config, compiled, &envoy.options()?, &envoy_binary())),
        Command::Istio { config, module, selector, namespace, gateway, output } => {
            let options = CompileOptions { clusters: ClusterNaming::Istio { namespace: namespace.clone() } };
            compile_with(&config, &options).and_then(|compiled| {
                let manifests = istio::manifests(
                    &compiled,
                    &istio::IstioOptions { module, selector, namespace, gateway },
                );
                eprintln!("wrote {}", manifests.explanation);
                write_or_print(&manifests.yaml, output.as_deref())
            })
        }
        Command::Generate { document: Document::Openapi3 { config, title, api_version, format, output } } => {
            compile(&config).and_then(|compiled| {
                let info = ApiInfo {
                    title: title.unwrap_or_else(|| default_title(&config)),
                    version: api_version,
                    listen: compiled.listener.address.clone(),
                };
                let text = render(&openapi::document(&compiled.plan, &info), format)?;
                write_or_print(&text, output.as_deref())
            })
        }
        Command::Generate { document: Document::Graphql { config, output } } => {
            compile(&config).and_then(|compiled| {
                let schema = compiled
                    .graphql
                    .ok_or_else(|| format!("{}: no flow has a graphql endpoint", config.display()))?;
                write_or_print(&semaphore_compiler::graphql::sdl(&schema), output.as_deref())
            })
        }
    }
}

fn compile(config: &Path) -> Result<Compiled, String> {
    compile_with(config, &CompileOptions::default())
}

fn compile_with(config: &Path, options: &CompileOptions) -> Result<Compiled, String> {
    match compile_file_with(config, options) {
        Ok(compiled) => {
            eprint!("{}", compiled.warnings);
            Ok(compiled)
        }
        Err(diagnostics) => {
            eprint!("{diagnostics}");
            let plural = if diagnostics.errors == 1 { "" } else { "s" };
            Err(format!("could not compile {} ({} error{plural})", config.display(), diagnostics.errors))
        }
    }
}

/// `app=checkout` -> (`app`, `checkout`).
fn parse_label(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_string(), value.to_string())),
        _ => Err(format!("`{text}` is not key=value")),
    }
}

/// `examples/getuser/config.hcl` -> `config`.
fn default_title(config: &Path) -> String {
    config.file_stem().map(|stem| stem.to_string_lossy().into_owned()).unwrap_or_else(|| "API".into())
}

fn render(document: &serde_json::Value, format: DocumentFormat) -> Result<String, String> {
    match format {
        DocumentFormat::Json => serde_json::to_string_pretty(document)
            .map(|json| json + "\n")
            .map_err(|e| format!("cannot write the document as JSON: {e}")),
        DocumentFormat::Yaml => {
            serde_norway::to_string(document).map_err(|e| format!("cannot write the document as YAML: {e}"))
        }
    }
}

fn write_or_print(text: &str, output: Option<&Path>) -> Result<(), String> {
    match output {
        Some(path) => {
            std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            eprintln!("wrote {}", path.display());
        }
        None => print!("{text}"),
    }
    Ok(())
}

impl EnvoyArgs {
    fn options(&self) -> Result<EnvoyOptions, String> {
        let wasm = match &self.wasm {
            Some(wasm) => wasm.clone(),
            None => {
                default_wasm().ok_or("no --wasm given and no built filter found; run `cargo xtask build`")?
            }
        };
        if !wasm.is_file() {
            return Err(format!("{} does not exist; run `cargo xtask build`", wasm.display()));
        }
        Ok(EnvoyOptions {
            wasm,
            listen: self.listen.clone(),
            grpc_listen: self.grpc_listen.clone(),
            graphql_listen: self.graphql_listen.clone(),
            admin: self.admin.clone(),
            upstream_overrides: BTreeMap::new(),
            ..Default::default()
        })
    }
}

/// target/release/semaphore -> target/wasm32-unknown-unknown/release/semaphore_filter.wasm
fn default_wasm() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let target = exe.parent()?.parent()?;
    let wasm = target.join("wasm32-unknown-unknown/release/semaphore_filter.wasm");
    wasm.is_file().then_some(wasm)
}

pub(crate) fn envoy_binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("ENVOY_BIN") {
        return PathBuf::from(bin);
    }
    let mut roots: Vec<PathBuf> = Vec::new();
    if let Ok(dir) = std::env::current_dir() {
        roots.extend(dir.ancestors().map(Path::to_path_buf));
    }
    if let Ok(exe) = std::env::current_exe() {
        roots.extend(exe.ancestors().skip(1).map(Path::to_path_buf));
    }
    for root in roots {
        let pattern = root.join(".venv/lib/python*/site-packages/envoy/_bin/envoy");
        if let Some(found) =
            glob::glob(&pattern.to_string_lossy()).ok().and_then(|mut g| g.find_map(Result::ok))
        {
            return found;
        }
    }
    PathBuf::from("envoy")
}

fn run(compiled: &Compiled, args: &EnvoyArgs) -> Result<(), String> {
    let yaml = envoy::bootstrap(compiled, &args.options()?);
    let path = std::env::temp_dir().join(format!("semaphore-envoy-{}.yaml", std::process::id()));
    std::fs::write(&path, yaml).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    let envoy = envoy_binary();
    eprintln!("starting {} -c {}", envoy.display(), path.display());
    let mut command = std::process::Command::new(&envoy);
    command.arg("-c").arg(&path).arg("--disable-hot-restart").arg("--log-level").arg("info");
    // Envoy drops the filter's lines below its `wasm` component's level: lower it to match.
    if matches!(compiled.plan.log_level.as_str(), "debug" | "trace") {
        command.arg("--component-log-level").arg(format!("wasm:{}", compiled.plan.log_level));
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        // Envoy takes over this process, so signals (Ctrl-C) reach it directly.
        let error = command.exec();
        Err(format!(
            "cannot start {}: {error} (install it with `cargo xtask up`, or set ENVOY_BIN)",
            envoy.display()
        ))
    }
    #[cfg(not(unix))]
    {
        let status = command.status().map_err(|e| format!("cannot start {}: {e}", envoy.display()))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("envoy exited with {status}"))
        }
    }
}
