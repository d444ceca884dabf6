//! Connection table and TIME-WAIT table.
