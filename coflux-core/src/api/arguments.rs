//! [`IntoArguments`]: the arguments of a submission, as a tuple of serde values.

use serde::Serialize;

use crate::model::Value;
use crate::sdk::{Failure, encode_arg};

/// Converts a tuple of serializable values (or a `Vec<Value>`) into encoded arguments.
pub trait IntoArguments {
    /// The encoded arguments, in order.
    fn into_arguments(self) -> Result<Vec<Value>, Failure>;
}

impl IntoArguments for Vec<Value> {
    fn into_arguments(self) -> Result<Vec<Value>, Failure> {
        Ok(self)
    }
}

macro_rules! tuple_arguments {
    ($($name:ident),*) => {
        impl<$($name: Serialize),*> IntoArguments for ($($name,)*) {
            #[allow(non_snake_case)]
            fn into_arguments(self) -> Result<Vec<Value>, Failure> {
                let ($($name,)*) = self;
                Ok(vec![$(encode_arg(&$name)?),*])
            }
        }
    };
}

tuple_arguments!();
tuple_arguments!(A);
tuple_arguments!(A, B);
tuple_arguments!(A, B, C);
tuple_arguments!(A, B, C, D);
tuple_arguments!(A, B, C, D, E);
tuple_arguments!(A, B, C, D, E, F);
tuple_arguments!(A, B, C, D, E, F, G);
tuple_arguments!(A, B, C, D, E, F, G, H);
