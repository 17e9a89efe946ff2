# The profile flow of `profile.hcl`, served as the gRPC method `bench.Profiles/Get` too:
# `cargo xtask bench` compares its throughput over gRPC and Connect with the HTTP endpoint's.
include = ["profile.hcl"]

endpoint "profile" "grpc" {
  package = "bench"
  service = "Profiles"
  method  = "Get"
}
