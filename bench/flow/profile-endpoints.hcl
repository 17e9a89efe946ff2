# The profile flow of `profile.hcl`, served as the gRPC method `bench.Profiles/Get` and as the
# GraphQL field `profile` too: `cargo xtask bench` compares its throughput over gRPC, Connect
# and GraphQL with the HTTP endpoint's.
include = ["profile.hcl"]

endpoint "profile" "grpc" {
  package = "bench"
  service = "Profiles"
  method  = "Get"
}

endpoint "profile" "graphql" {
  name = "Profile"
}
