# One flow, three front doors: HTTP, the gRPC method `checkout.Storefront/Checkout` (gRPC-Web
# and Connect too), and the GraphQL mutation `checkout`.
endpoint "Checkout" "http" {
  endpoint = "/checkout"
  method   = "POST"
}

endpoint "Checkout" "grpc" {
  package = "checkout"
  service = "Storefront"
  method  = "Checkout"
}

endpoint "Checkout" "graphql" {
  path = "checkout"
  base = "mutation"
  name = "Order"
}

flow "Checkout" {
  input "checkout.CheckoutRequest" {
    header = ["Authorization"]
  }

  # cart and user start together; shipping waits for the cart it is quoted on.
  resource "cart" {
    request "checkout.Carts" "Get" {
      id = "{{ input:cart_id }}"

      header {
        Authorization = "{{ input.header:Authorization }}"
      }
    }
  }

  resource "user" {
    request "checkout.Customers" "Get" {
      id = "{{ input:user_id }}"

      header {
        Authorization = "{{ input.header:Authorization }}"
      }
    }
  }

  resource "shipping" {
    request "checkout.Shipping" "Quote" {
      cart_id        = "{{ cart:id }}"
      weight_grams   = "{{ cart:weight_grams }}"
      subtotal_cents = "{{ cart:subtotal_cents }}"
    }
  }

  # Only when the client sent a coupon: a missing or empty string is false.
  if "{{ input:coupon }}" {
    resource "discount" {
      request "checkout.Discounts" "Apply" {
        code           = "{{ input:coupon }}"
        cart_id        = "{{ cart:id }}"
        subtotal_cents = "{{ cart:subtotal_cents }}"

        header {
          X-Customer = "customer {{ input:user_id }}"
        }
      }
    }
  }

  output "checkout.Summary" {
    header {
      X-Carrier = "{{ shipping:carrier }}"
    }

    cart_id  = "{{ cart:id }}"
    currency = "{{ cart:currency }}"

    message "customer" {
      name    = "{{ user:name }}"
      email   = "{{ user:email }}"
      address = "{{ user:address }}"
    }

    repeated "items" "cart:items" {
      sku         = "{{ cart:items.sku }}"
      name        = "{{ cart:items.name }}"
      quantity    = "{{ cart:items.quantity }}"
      total_cents = "{{ cart:items.unit_price_cents * cart:items.quantity }}"
    }

    subtotal_cents = "{{ cart:subtotal_cents }}"
    shipping       = "{{ shipping:. }}"
    discount       = "{{ discount:. }}"
  }
}
