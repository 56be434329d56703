//! The Parquet data files of one partition of a Delta table, written from live-file rows: each
//! file create-only, Snappy-compressed, at most about [`FILE_BYTES`] long, with its statistics
//! for the `add` action that will name it. Memory stays within the partition's budget in bytes:
//! rows go to Arrow arrays a few MiB at a time, and row groups close at a byte size.

use super::column_builder::ColumnBuilder;
use super::columns::{
    Cell, ColumnRole, DeltaColumn, DeltaType, FieldRole, cell, original_text, original_text_name,
};
use crate::error::EngineError;
use crate::format::cdm_csv::create_unpublished;
use arrow_array::RecordBatch;
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use lakelink_model::csv_row::Record;
use lakelink_model::lake::{Lake, LakeError, NewFile};
use lakelink_model::lake_path::{LakePath, TableName};
use lakelink_model::schema::{Attribute, AttributeRole};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use serde_json::{Map, Value as Json};
use std::io::{BufWriter, Write};
use std::sync::Arc;

/// A data file is closed once it holds about this many bytes, so that a snapshot that changes a
/// few rows rewrites little, and readers split work by file.
pub const FILE_BYTES: usize = 128 << 20;

/// Rows are handed to the Parquet writer once their arrays hold about this many bytes.
const BATCH_BYTES: usize = 4 << 20;

/// A data file written and committed, for the `add` action that publishes it.
#[derive(Debug, Clone, PartialEq)]
pub struct WrittenFile {
    /// Its path inside the table's folder.
    pub path: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its statistics, as `add.stats` carries them.
    pub stats: String,
}

/// The columns a row of the table is written as, and the attribute each comes from.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The columns, in the table schema's order.
    pub columns: Vec<DeltaColumn>,
}

impl Layout {
    /// Whether the layout has the original-text column of attribute `at`.
    fn has_original(&self, at: usize) -> bool {
        self.columns
            .iter()
            .any(|c| c.role == ColumnRole::OriginalText(at))
    }

    /// The type of each of `attributes` attributes' column.
    fn attribute_types(&self, attributes: usize) -> Vec<Option<DeltaType>> {
        (0..attributes)
            .map(|i| {
                self.columns
                    .iter()
                    .find(|c| c.role == ColumnRole::Attribute(i))
                    .map(|c| c.ty)
            })
            .collect()
    }

    /// The layout with attribute `at`'s original-text column appended.
    pub fn with_original(&self, attribute: &Attribute, at: usize) -> Layout {
        let mut columns = self.columns.clone();
        columns.push(DeltaColumn {
            name: original_text_name(attribute),
            ty: DeltaType::String,
            role: ColumnRole::OriginalText(at),
        });
        Layout { columns }
    }

    /// The Arrow schema of a data file of this layout.
    fn arrow_schema(&self) -> Schema {
        Schema::new(
            self.columns
                .iter()
                .map(|c| Field::new(&c.name, arrow_type(c.ty), true))
                .collect::<Vec<_>>(),
        )
    }
}

/// The Arrow type a Delta type is written as in Parquet.
fn arrow_type(ty: DeltaType) -> DataType {
    match ty {
        DeltaType::Long => DataType::Int64,
        DeltaType::Double => DataType::Float64,
        DeltaType::Decimal { precision, scale } => DataType::Decimal128(precision, scale as i8),
        DeltaType::Boolean => DataType::Boolean,
        DeltaType::Date => DataType::Date32,
        DeltaType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        DeltaType::String => DataType::Utf8,
        DeltaType::Binary => DataType::Binary,
    }
}

/// Counts the bytes that reach the file.
struct Counted {
    inner: BufWriter<Box<dyn NewFile>>,
    bytes: u64,
}

impl Write for Counted {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// The file being written.
struct OpenFile {
    path: LakePath,
    inside: String,
    writer: ArrowWriter<Counted>,
    schema: Arc<Schema>,
    builders: Vec<ColumnBuilder>,
    rows: u64,
}

/// Writes one partition's rows into data files named `<dir>/T<generation>-<n>.parquet`.
pub struct DataFiles<'a> {
    lake: &'a dyn Lake,
    table: &'a TableName,
    attributes: &'a [Attribute],
    /// `PartitionId=<partition>`.
    dir: String,
    generation: u64,
    /// The row-group budget, in bytes.
    memory: usize,
    layout: Layout,
    /// Each attribute's column type in `layout` (looked up once, not for every row).
    types: Vec<Option<DeltaType>>,
    open: Option<OpenFile>,
    written: Vec<WrittenFile>,
}

impl<'a> DataFiles<'a> {
    /// The writer of `table`'s `partition` for `generation`, in columns `layout`.
    pub fn new(
        lake: &'a dyn Lake,
        table: &'a TableName,
        attributes: &'a [Attribute],
        partition: &str,
        generation: u64,
        layout: Layout,
        memory: usize,
    ) -> DataFiles<'a> {
        DataFiles {
            lake,
            table,
            attributes,
            dir: format!("PartitionId={partition}"),
            generation,
            memory: memory.clamp(8 << 20, 256 << 20),
            types: layout.attribute_types(attributes.len()),
            layout,
            open: None,
            written: Vec::new(),
        }
    }

    /// Appends one row: its fields in attribute order (a row written before a column was added
    /// is shorter; `fills` gives such a field, else it is null: in-place rows hold the value
    /// the column has for existing rows, append-only ones are kept as the live file has them).
    /// `created` replaces its `SinkCreatedOn`.
    pub fn push(
        &mut self,
        record: &Record,
        created: Option<&str>,
        fills: &dyn Fn(usize) -> Option<(String, bool)>,
    ) -> Result<(), EngineError> {
        // Every field, as the text and quoting the live file holds.
        let mut fields: Vec<(std::borrow::Cow<'_, str>, bool)> =
            Vec::with_capacity(self.attributes.len());
        for (i, a) in self.attributes.iter().enumerate() {
            let field = match (a.role, created) {
                (AttributeRole::SinkCreatedOn, Some(c)) => Some((c.into(), true)),
                _ => record.get(i).map(|(t, q)| (t.into(), q)),
            };
            fields.push(match field {
                Some(f) => f,
                None => match fills(i) {
                    Some((text, quoted)) => (text.into(), quoted),
                    None => ("".into(), false),
                },
            });
        }
        let cells: Vec<Cell<'_>> = fields
            .iter()
            .zip(&self.types)
            .zip(self.attributes)
            .map(|(((text, quoted), ty), a)| match ty {
                Some(ty) => cell(text, *quoted, *ty, FieldRole::of(a)),
                None => Cell::Null,
            })
            .collect();
        // A field that does not fit its column needs the attribute's original-text column:
        // a file has a fixed set of columns, so one that lacks it ends here.
        for (i, c) in cells.iter().enumerate() {
            if *c == Cell::Unfit && !self.layout.has_original(i) {
                self.close()?;
                self.layout = self.layout.with_original(&self.attributes[i], i);
                self.types = self.layout.attribute_types(self.attributes.len());
            }
        }
        if self.open.is_none() {
            self.start()?;
        }
        let Some(file) = self.open.as_mut() else {
            return Ok(());
        };
        for (column, builder) in self.layout.columns.iter().zip(&mut file.builders) {
            match column.role {
                ColumnRole::Attribute(i) => builder.append(&cells[i]),
                ColumnRole::OriginalText(i) => match cells[i] {
                    Cell::Unfit => {
                        let (text, quoted) = &fields[i];
                        builder.append_text(&original_text(text, *quoted));
                    }
                    _ => builder.append_null(),
                },
            }
        }
        file.rows += 1;
        let held: usize = file.builders.iter().map(|b| b.bytes).sum();
        if held >= BATCH_BYTES {
            self.write_batch()?;
            let file = self.open.as_ref();
            if file.is_some_and(|f| f.writer.bytes_written() >= FILE_BYTES) {
                self.close()?;
            }
        }
        Ok(())
    }

    /// Starts the next file.
    fn start(&mut self) -> Result<(), EngineError> {
        let inside = format!(
            "{}/T{}-{}.parquet",
            self.dir,
            self.generation,
            self.written.len()
        );
        let path = LakePath::delta_file(self.table, &inside);
        let schema = Arc::new(self.layout.arrow_schema());
        let properties = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_max_row_group_bytes(Some(self.memory / 2))
            .set_created_by(format!("lakelink {}", env!("CARGO_PKG_VERSION")))
            .build();
        let out = Counted {
            inner: BufWriter::with_capacity(1 << 20, create_unpublished(self.lake, &path)?),
            bytes: 0,
        };
        let writer = ArrowWriter::try_new(out, schema.clone(), Some(properties))
            .map_err(|e| parquet_error(&path, e))?;
        self.open = Some(OpenFile {
            builders: self
                .layout
                .columns
                .iter()
                .map(|c| ColumnBuilder::new(c.ty))
                .collect(),
            path,
            inside,
            writer,
            schema,
            rows: 0,
        });
        Ok(())
    }

    /// Hands the rows built so far to the Parquet writer.
    fn write_batch(&mut self) -> Result<(), EngineError> {
        let Some(file) = self.open.as_mut() else {
            return Ok(());
        };
        let arrays = file.builders.iter_mut().map(|b| b.finish()).collect();
        // The arrays are built for the schema beside them; a mismatch is lakelink's own bug.
        let batch = RecordBatch::try_new(file.schema.clone(), arrays).map_err(|e| {
            EngineError::Manifest {
                path: file.path.to_string(),
                reason: format!("its rows do not match its columns ({e}); this is a bug in lakelink, please report it"),
            }
        })?;
        if batch.num_rows() > 0 {
            file.writer
                .write(&batch)
                .map_err(|e| parquet_error(&file.path, e))?;
        }
        Ok(())
    }

    /// Finishes the open file, if any, and commits it.
    fn close(&mut self) -> Result<(), EngineError> {
        if self.open.as_ref().is_some_and(|f| f.rows == 0) {
            // Nothing was appended to it: it is never committed.
            if let Some(file) = self.open.take() {
                drop(file.writer);
            }
            return Ok(());
        }
        self.write_batch()?;
        let Some(file) = self.open.take() else {
            return Ok(());
        };
        // Writes the footer.
        let out = file
            .writer
            .into_inner()
            .map_err(|e| parquet_error(&file.path, e))?;
        let size = out.bytes;
        let new_file = out
            .inner
            .into_inner()
            .map_err(|e| LakeError::io("write", &file.path, e.into_error()))?;
        new_file.commit()?;
        self.written.push(WrittenFile {
            path: file.inside,
            size,
            stats: stats_json(&self.layout, &file.builders, file.rows),
        });
        Ok(())
    }

    /// Commits the last file; returns every file written, in order, and the layout the last
    /// was written in (with any original-text column the rows needed).
    pub fn finish(mut self) -> Result<(Vec<WrittenFile>, Layout), EngineError> {
        self.close()?;
        Ok((self.written, self.layout))
    }
}

/// The `add.stats` of a file whose columns are `builders`.
fn stats_json(layout: &Layout, builders: &[ColumnBuilder], rows: u64) -> String {
    let (mut min, mut max, mut nulls) = (Map::new(), Map::new(), Map::new());
    for (column, b) in layout.columns.iter().zip(builders) {
        nulls.insert(column.name.clone(), Json::from(b.stats.nulls));
        if let Some(v) = b.stats.min_json() {
            min.insert(column.name.clone(), v);
        }
        if let Some(v) = b.stats.max_json() {
            max.insert(column.name.clone(), v);
        }
    }
    serde_json::json!({
        "numRecords": rows,
        "minValues": min,
        "maxValues": max,
        "nullCount": nulls,
    })
    .to_string()
}

/// The error for a Parquet problem with the file at `path`: the lake's own error when the
/// file's storage failed (a full disk, a lost connection: retried like any lake error).
pub fn parquet_error(path: &LakePath, e: parquet::errors::ParquetError) -> EngineError {
    if let parquet::errors::ParquetError::External(inner) = e {
        return match inner.downcast::<std::io::Error>() {
            // The lake's own error, carried through `Write` (a refused credential stays
            // refused), else a failure of the file's storage.
            Ok(io) if io.get_ref().is_some_and(|e| e.is::<LakeError>()) => {
                match io.into_inner().map(|e| e.downcast::<LakeError>()) {
                    Some(Ok(lake)) => EngineError::Lake(*lake),
                    _ => EngineError::Manifest {
                        path: path.to_string(),
                        reason: "could not be written".into(),
                    },
                }
            }
            Ok(io) => EngineError::Lake(LakeError::io("write", path, *io)),
            Err(inner) => EngineError::Manifest {
                path: path.to_string(),
                reason: format!("could not be written as Parquet ({inner})"),
            },
        };
    }
    EngineError::Manifest {
        path: path.to_string(),
        reason: format!("could not be written as Parquet ({e})"),
    }
}
