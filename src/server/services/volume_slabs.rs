//! Volumes stored in slabs (see [`crate::slabs`]): each slab an object of its own under a
//! fresh key, recorded in `slabs`, and listed in order by its volume's `objects` row. Images
//! are cut at import, mask versions when they are made; a save writes only the slabs it
//! changed. The browser fetches slabs by presigned URL, the shown slice's first.

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine;
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::AnyConnection;
use uuid::Uuid;

use crate::api::{ArtifactKind, CaseId, VolumeSlabs};
use crate::server::clock::now_ms;
use crate::server::error::AppError;
use crate::server::state::AppState;
use crate::slabs::{self, SlabGrid, SlabKind, SlabReader};

/// Slabs stored or fetched at once by one request.
const SLABS_IN_FLIGHT: usize = 8;

/// How a volume is stored in slabs: its grid, header, and slab ids in k order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SlabManifest {
    pub grid: SlabGrid,
    /// The volume's NIfTI-1 header (348 bytes), base64.
    pub header: String,
    /// Slab `id` of case `c` is stored at `cases/{c}/slabs/{id}.gz`.
    pub slabs: Vec<String>,
}

impl SlabManifest {
    pub fn new(grid: SlabGrid, header_bytes: &[u8], slabs: Vec<String>) -> SlabManifest {
        SlabManifest { grid, header: base64::engine::general_purpose::STANDARD.encode(header_bytes), slabs }
    }

    /// The manifest recorded in `slabs_json`; none for a volume stored only as a file.
    pub fn parse(json: &str) -> Result<Option<SlabManifest>, AppError> {
        if json.is_empty() {
            return Ok(None);
        }
        let manifest: SlabManifest =
            serde_json::from_str(json).map_err(|e| AppError::internal(format!("slab manifest: {e}")))?;
        if manifest.slabs.len() != manifest.grid.count() {
            return Err(AppError::internal("slab manifest: its slabs do not match its grid"));
        }
        Ok(Some(manifest))
    }

    pub(crate) fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a manifest serialises")
    }

    /// The distinct slab ids, each with the first position listing it, and for each position
    /// the index of its id among them: a slab listed many times (the zeros of an empty mask)
    /// is fetched or presigned once.
    fn distinct(&self) -> (Vec<(usize, String)>, Vec<usize>) {
        let mut index_of: HashMap<&str, usize> = HashMap::new();
        let mut distinct = Vec::new();
        let positions = self
            .slabs
            .iter()
            .enumerate()
            .map(|(position, id)| {
                *index_of.entry(id).or_insert_with(|| {
                    distinct.push((position, id.clone()));
                    distinct.len() - 1
                })
            })
            .collect();
        (distinct, positions)
    }

    pub(crate) fn header_bytes(&self) -> Result<Vec<u8>, AppError> {
        base64::engine::general_purpose::STANDARD.decode(&self.header).map_err(AppError::internal)
    }
}

fn slab_ref(case_id: &CaseId, id: &str) -> String {
    format!("cases/{case_id}/slabs/{id}.gz")
}

/// A slab written to storage; recorded (with [`record`]) in the transaction that commits
/// the volume listing it.
#[derive(Clone, Debug)]
pub struct StoredSlab {
    pub id: String,
    pub size_bytes: i64,
    pub sha256: String,
}

/// A slab compressed and ready to store under a fresh id.
pub struct PackedSlab {
    id: String,
    stored: Vec<u8>,
}

impl PackedSlab {
    /// Compresses `raw` (CPU work: call off the async threads).
    pub(crate) fn pack(raw: &[u8]) -> PackedSlab {
        PackedSlab { id: Uuid::new_v4().simple().to_string(), stored: slabs::compress(raw) }
    }

    pub fn id(&self) -> &str {
        &self.id
    }
}

/// Stores packed slabs, a few at a time; their records in the same order.
pub async fn put(
    state: &AppState,
    case_id: &CaseId,
    packed: impl IntoIterator<Item = PackedSlab>,
) -> Result<Vec<StoredSlab>, AppError> {
    futures::stream::iter(packed)
        .map(|slab| put_one(state, case_id, slab))
        .buffered(SLABS_IN_FLIGHT)
        .try_collect()
        .await
}

async fn put_packed(
    state: &AppState,
    case_id: &CaseId,
    packed: Result<PackedSlab, AppError>,
) -> Result<StoredSlab, AppError> {
    put_one(state, case_id, packed?).await
}

async fn put_one(state: &AppState, case_id: &CaseId, slab: PackedSlab) -> Result<StoredSlab, AppError> {
    let record = StoredSlab {
        size_bytes: slab.stored.len() as i64,
        sha256: hex::encode(Sha256::digest(&slab.stored)),
        id: slab.id,
    };
    state.store.put(&slab_ref(case_id, &record.id), slab.stored).await?;
    Ok(record)
}

/// Inside the caller's transaction: records slabs just stored for `case_id`.
pub(crate) async fn record(
    tx: &mut AnyConnection,
    case_id: &CaseId,
    stored: &[StoredSlab],
    created_at: i64,
) -> Result<(), AppError> {
    for slab in stored {
        sqlx::query(
            "INSERT INTO slabs (object_ref, case_id, size_bytes, sha256, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(slab_ref(case_id, &slab.id))
        .bind(case_id)
        .bind(slab.size_bytes)
        .bind(&slab.sha256)
        .bind(created_at)
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

/// Cuts a `.nii` / `.nii.gz` file into slabs and stores them, holding a few slabs in memory
/// at a time whatever the volume's size: one thread reads and compresses while the slabs
/// before are being stored. The manifest and the slabs to record.
pub(crate) async fn put_file(
    state: &AppState,
    case_id: &CaseId,
    what: &'static str,
    kind: SlabKind,
    file: Box<dyn std::io::BufRead + Send>,
) -> Result<(SlabManifest, Vec<StoredSlab>), AppError> {
    let max_voxels = state.config.max_volume_voxels;
    let (sender, mut receiver) = tokio::sync::mpsc::channel::<Result<PackedSlab, AppError>>(SLABS_IN_FLIGHT);
    let (head_sender, head) = tokio::sync::oneshot::channel();
    let reader = tokio::task::spawn_blocking(move || {
        let mut reader = match SlabReader::open(what, file, max_voxels, kind) {
            Ok(reader) => reader,
            Err(err) => return sender.blocking_send(Err(err.into())),
        };
        let _ = head_sender.send((reader.grid, reader.header_bytes.clone()));
        loop {
            let packed = match reader.next_slab() {
                Ok(Some(raw)) => Ok(PackedSlab::pack(&raw)),
                Ok(None) => return Ok(()),
                Err(err) => Err(err.into()),
            };
            sender.blocking_send(packed)?;
        }
    });
    let slabs = futures::stream::poll_fn(|cx| receiver.poll_recv(cx));
    let stored: Result<Vec<StoredSlab>, AppError> =
        slabs.map(|packed| put_packed(state, case_id, packed)).buffered(SLABS_IN_FLIGHT).try_collect().await;
    drop(receiver);
    let _ = reader.await;
    let stored = stored?;
    let (grid, header_bytes) =
        head.await.map_err(|_| AppError::internal("the slab reader stopped before the header"))?;
    let manifest = SlabManifest::new(grid, &header_bytes, stored.iter().map(|s| s.id.clone()).collect());
    Ok((manifest, stored))
}

/// The voxel bytes of every slab, in k order, fetched a few at a time; a slab listed more than
/// once (the zeros of an empty mask) is fetched once and shared.
pub async fn load(state: &AppState, case_id: &CaseId, manifest: &SlabManifest) -> Result<Vec<Arc<[u8]>>, AppError> {
    let (distinct, positions) = manifest.distinct();
    let fetched: Vec<Arc<[u8]>> = futures::stream::iter(distinct)
        .map(|(index, id)| load_one(state, case_id, manifest.grid, index, id))
        .buffered(SLABS_IN_FLIGHT)
        .try_collect()
        .await?;
    Ok(positions.into_iter().map(|at| fetched[at].clone()).collect())
}

async fn load_one(
    state: &AppState,
    case_id: &CaseId,
    grid: SlabGrid,
    index: usize,
    id: String,
) -> Result<Arc<[u8]>, AppError> {
    let stored = state.store.get(&slab_ref(case_id, &id)).await?;
    let expected = grid.byte_range(index).len();
    let raw =
        tokio::task::spawn_blocking(move || slabs::decompress(&format!("stored slab {index}"), &stored, expected))
            .await
            .map_err(AppError::internal)??;
    Ok(Arc::from(raw))
}

/// Presigned URLs of the slabs of the volume `object_ref` (whose `objects.slabs_json` is
/// `slabs_json`), for the browser.
pub fn urls(state: &AppState, case_id: &CaseId, object_ref: &str, slabs_json: &str) -> Result<VolumeSlabs, AppError> {
    // Volumes stored before slabs are cut at start-up (`cut_stored_files`); one without slabs
    // here was written by an older release still running beside this one.
    let manifest = SlabManifest::parse(slabs_json)?.ok_or_else(|| AppError::Unavailable {
        service: "volume slabs",
        detail: format!("{object_ref} is not cut into slabs yet; a restart of the app cuts it"),
    })?;
    let (distinct, positions) = manifest.distinct();
    let mut urls = Vec::with_capacity(distinct.len());
    for (_, id) in distinct {
        urls.push(state.store.presign_get(&slab_ref(case_id, &id))?);
    }
    Ok(VolumeSlabs {
        depth: manifest.grid.depth,
        header: manifest.header.clone(),
        urls,
        slabs: positions.into_iter().map(|at| at as u32).collect(),
    })
}

/// Cuts into slabs every volume stored before slabs were (as an older release left the
/// database), so that opening a case only ever reads. Run at start-up; each volume once, and
/// instances starting together keep the first cut (the others' slabs are swept later).
pub(crate) async fn cut_stored_files(state: &AppState) -> Result<usize, AppError> {
    let uncut: Vec<(String, CaseId, ArtifactKind)> =
        sqlx::query_as("SELECT object_ref, case_id, kind FROM objects WHERE slabs_json = '' ORDER BY created_at")
            .fetch_all(&state.db.pool)
            .await?;
    for (object_ref, case_id, kind) in &uncut {
        cut_stored_file(state, object_ref, case_id, *kind).await?;
    }
    if !uncut.is_empty() {
        tracing::info!(volumes = uncut.len(), "volumes stored before slabs cut into slabs");
    }
    Ok(uncut.len())
}

async fn cut_stored_file(
    state: &AppState,
    object_ref: &str,
    case_id: &CaseId,
    kind: ArtifactKind,
) -> Result<(), AppError> {
    let kind = match kind {
        ArtifactKind::Image => SlabKind::Image,
        ArtifactKind::Mask => SlabKind::Mask,
    };
    // Streamed from storage into the slab reader's blocking thread: a volume's file is never
    // held whole, however large.
    let file = tokio_util::io::SyncIoBridge::new(state.store.get_reader(object_ref).await?);
    let (manifest, stored) = put_file(state, case_id, "stored volume", kind, Box::new(file)).await?;
    let mut tx = state.db.begin_write().await?;
    let updated = sqlx::query("UPDATE objects SET slabs_json = $1 WHERE object_ref = $2 AND slabs_json = ''")
        .bind(manifest.to_json())
        .bind(object_ref)
        .execute(&mut *tx)
        .await?;
    if updated.rows_affected() == 1 {
        record(&mut tx, case_id, &stored, now_ms()).await?;
        tx.commit().await?;
    }
    Ok(())
}
