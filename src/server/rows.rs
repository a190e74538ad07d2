//! Parts of rows that several services' queries read, flattened into their `sqlx::FromRow`
//! structs. Every query decodes its rows by a `FromRow` struct declared beside it, or by
//! position (a scalar, a tuple); typed ids and enums through their parsers (see `db`). No rule
//! reads a column by its name.

use sqlx::FromRow;

/// A volume's size in voxels, from the `dim_i, dim_j, dim_k` columns of `objects`.
#[derive(Clone, Copy, Debug, FromRow)]
pub struct Dims {
    pub dim_i: i64,
    pub dim_j: i64,
    pub dim_k: i64,
}

impl Dims {
    pub fn voxels(self) -> [u32; 3] {
        [self.dim_i, self.dim_j, self.dim_k].map(|d| d as u32)
    }
}
