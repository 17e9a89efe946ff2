//! The plan's words as people write and read them: function names, operator symbols, codec,
//! transport and property names. The compiler parses configurations with them and prints plans
//! with them, so what `semaphore inspect` shows is what a user writes.

use crate::{BinaryOp, Codec, Function, Property, Transport, UnaryOp};

impl Function {
    /// Every built-in function, in the order they are listed to users.
    pub const ALL: [Function; 11] = [
        Function::Sprintf,
        Function::Strconcat,
        Function::Jwt,
        Function::Len,
        Function::Base64,
        Function::Base64Decode,
        Function::Json,
        Function::Now,
        Function::Uuid,
        Function::Lower,
        Function::Upper,
    ];

    /// The name a template calls it by: `{{ base64_decode(...) }}`.
    pub fn name(self) -> &'static str {
        match self {
            Function::Sprintf => "sprintf",
            Function::Strconcat => "strconcat",
            Function::Jwt => "jwt",
            Function::Len => "len",
            Function::Base64 => "base64",
            Function::Base64Decode => "base64_decode",
            Function::Json => "json",
            Function::Now => "now",
            Function::Uuid => "uuid",
            Function::Lower => "lower",
            Function::Upper => "upper",
        }
    }

    pub fn from_name(name: &str) -> Option<Function> {
        Function::ALL.into_iter().find(|function| function.name() == name)
    }
}

impl BinaryOp {
    pub fn symbol(self) -> &'static str {
        match self {
            BinaryOp::Eq => "==",
            BinaryOp::Ne => "!=",
            BinaryOp::Lt => "<",
            BinaryOp::Le => "<=",
            BinaryOp::Gt => ">",
            BinaryOp::Ge => ">=",
            BinaryOp::And => "&&",
            BinaryOp::Or => "||",
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
            BinaryOp::Rem => "%",
        }
    }
}

impl UnaryOp {
    pub fn symbol(self) -> &'static str {
        match self {
            UnaryOp::Not => "!",
            UnaryOp::Negate => "-",
        }
    }
}

impl Codec {
    /// Every codec, in the order they are listed to users.
    pub const ALL: [Codec; 4] = [Codec::Json, Codec::Proto, Codec::FormUrlencoded, Codec::Xml];

    /// The name a configuration selects it by: `codec = "form-urlencoded"`.
    pub fn name(self) -> &'static str {
        match self {
            Codec::Json => "json",
            Codec::Proto => "proto",
            Codec::FormUrlencoded => "form-urlencoded",
            Codec::Xml => "xml",
        }
    }

    pub fn from_name(name: &str) -> Option<Codec> {
        Codec::ALL.into_iter().find(|codec| codec.name() == name)
    }

    /// The content type of the codec's bodies.
    pub fn content_type(self) -> &'static str {
        match self {
            Codec::Json => "application/json",
            Codec::Proto => "application/protobuf",
            Codec::FormUrlencoded => "application/x-www-form-urlencoded",
            Codec::Xml => "application/xml",
        }
    }
}

impl Transport {
    /// Every transport, in the order they are listed to users.
    pub const ALL: [Transport; 2] = [Transport::Http, Transport::Grpc];

    /// The name a service's `transport` option selects it by.
    pub fn name(self) -> &'static str {
        match self {
            Transport::Http => "http",
            Transport::Grpc => "grpc",
        }
    }

    pub fn from_name(name: &str) -> Option<Transport> {
        Transport::ALL.into_iter().find(|transport| transport.name() == name)
    }
}

impl Property {
    /// Every property, in the order they are listed to users.
    pub const ALL: [Property; 5] =
        [Property::Request, Property::Response, Property::Header, Property::Params, Property::Error];

    /// The name a reference reads it by: `{{ user.header:etag }}`.
    pub fn name(self) -> &'static str {
        match self {
            Property::Request => "request",
            Property::Response => "response",
            Property::Header => "header",
            Property::Params => "params",
            Property::Error => "error",
        }
    }

    pub fn from_name(name: &str) -> Option<Property> {
        Property::ALL.into_iter().find(|property| property.name() == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `ALL` lists every variant once: the discriminants are 0..n, in order.
    fn is_every_variant(discriminants: impl Iterator<Item = i32>) -> bool {
        discriminants.enumerate().all(|(index, discriminant)| index as i32 == discriminant)
    }

    #[test]
    fn every_name_reads_back() {
        for function in Function::ALL {
            assert_eq!(Function::from_name(function.name()), Some(function));
        }
        for codec in Codec::ALL {
            assert_eq!(Codec::from_name(codec.name()), Some(codec));
        }
        for transport in Transport::ALL {
            assert_eq!(Transport::from_name(transport.name()), Some(transport));
        }
        for property in Property::ALL {
            assert_eq!(Property::from_name(property.name()), Some(property));
        }
        assert_eq!(Function::from_name("base64_decode"), Some(Function::Base64Decode));
        assert_eq!(Function::from_name("base64decode"), None);
        assert_eq!(Codec::from_name("form-urlencoded"), Some(Codec::FormUrlencoded));
    }

    #[test]
    fn all_lists_every_variant() {
        assert!(is_every_variant(Function::ALL.into_iter().map(|f| f as i32)));
        assert!(Function::try_from(Function::ALL.len() as i32).is_err());
        assert!(is_every_variant(Codec::ALL.into_iter().map(|c| c as i32)));
        assert!(Codec::try_from(Codec::ALL.len() as i32).is_err());
        assert!(is_every_variant(Transport::ALL.into_iter().map(|t| t as i32)));
        assert!(Transport::try_from(Transport::ALL.len() as i32).is_err());
        assert!(is_every_variant(Property::ALL.into_iter().map(|p| p as i32)));
        assert!(Property::try_from(Property::ALL.len() as i32).is_err());
    }

    #[test]
    fn operator_symbols_are_distinct() {
        let binary: Vec<&str> =
            (0..).map_while(|op| BinaryOp::try_from(op).ok()).map(BinaryOp::symbol).collect();
        let mut unique = binary.clone();
        unique.sort();
        unique.dedup();
        assert_eq!((unique.len(), binary.len()), (13, 13));
        assert_ne!(UnaryOp::Not.symbol(), UnaryOp::Negate.symbol());
    }
}
