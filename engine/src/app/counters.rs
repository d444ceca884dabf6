//! The counter structs of the applications, shaped like `tcp::Stats`: every
//! counter is a named `u64` with its help text, visited by `for_each` so the
//! metrics exporter prints them, and summed across shards by `merge`.

macro_rules! counters {
    ($(#[$m:meta])* pub struct $name:ident { $($(#[doc = $doc:literal])* $field:ident,)* }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct $name { $($(#[doc = $doc])* pub $field: u64,)* }

        impl $name {
            /// Every counter with its metric name and help text, in declaration order.
            pub fn for_each(&self, mut f: impl FnMut(&'static str, &'static str, u64)) {
                $(f(stringify!($field), concat!($($doc),*).trim(), self.$field);)*
            }
            /// Adds another shard's counters into these.
            pub fn merge(&mut self, other: &$name) {
                $(self.$field += other.$field;)*
            }
        }
    };
}

pub(crate) use counters;
