endpoint "Me" "http" {
  endpoint = "/me"
  method   = "GET"
}

# Envoy's jwt_authn filter runs before this flow and answers 401 to any request without a valid
# token (see jwt_authn.yaml), so the claims read here are verified ones. jwt() itself only
# decodes them: on its own it would trust any token a client made up.
flow "Me" {
  input "profiles.MeRequest" {
    header = ["Authorization"]
  }

  resource "profile" {
    request "profiles.Profiles" "Get" {
      id = "{{ jwt(input.header:Authorization):sub }}"
    }
  }

  output "profiles.Profile" {
    id    = "{{ profile:id }}"
    name  = "{{ profile:name }}"
    email = "{{ profile:email }}"
    team  = "{{ profile:team }}"
  }
}
