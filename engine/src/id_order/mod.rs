//! Rows of the lake's CSV in `Id` order: the key an in-place table's rows sort by, a row
//! carried as its bytes, and a sort by Id in bounded memory. An in-place snapshot merges its
//! changes in this order; the initial copy notes how much of each live file already stands in
//! it (`table_feed::IdOrderedPrefix`).

mod id_key;
mod raw_row;
mod spill_sort;

pub use id_key::IdKey;
pub use raw_row::{RawRow, RowReader, SINK_CREATED_ON};
pub use spill_sort::{Keyed, SpillSorter};
