//! The tensors of an inference on the wire, in the protocol's two encodings: JSON (portable,
//! about ten bytes a value) and the binary tensor data extension that KServe and Triton
//! define: a JSON header of `Inference-Header-Content-Length` bytes, then the raw
//! little-endian bytes of each binary tensor in order, each sized by its `binary_data_size`
//! parameter. The request is made once, in binary; its JSON form is written from those bytes
//! only for a server that refuses the extension.

use bytes::Bytes;
use serde::de::{Deserializer, SeqAccess, Visitor};
use serde::ser::Serializer;
use serde::{Deserialize, Serialize};

/// The header that announces the binary extension and the length of the JSON part.
pub(super) const HEADER_LENGTH: &str = "inference-header-content-length";

/// The body of an inference on the image `[1, 1, k, j, i]` (FP32) asking for `logits`.
pub(super) struct ImageRequest {
    /// The binary-extension body: the JSON header, then the intensities' bytes.
    binary: Bytes,
    header_length: usize,
    shape: [usize; 5],
}

impl ImageRequest {
    pub(super) fn new(intensities: Vec<f32>, shape: [usize; 5]) -> Result<ImageRequest, serde_json::Error> {
        let byte_count = intensities.len() * 4;
        let header = serde_json::to_vec(&InferRequest {
            inputs: [RequestTensor {
                name: "image",
                shape,
                datatype: "FP32",
                data: None,
                parameters: Some(BinarySize { binary_data_size: byte_count }),
            }],
            outputs: [RequestedOutput { name: "logits", parameters: Some(BinaryOutput { binary_data: true }) }],
        })?;
        let mut binary = Vec::with_capacity(header.len() + byte_count);
        binary.extend_from_slice(&header);
        for value in intensities {
            binary.extend_from_slice(&value.to_le_bytes());
        }
        Ok(ImageRequest { binary: binary.into(), header_length: header.len(), shape })
    }

    /// The binary-extension body and the length of its JSON header.
    pub(super) fn binary(&self) -> (Bytes, usize) {
        (self.binary.clone(), self.header_length)
    }

    /// The same request as plain JSON.
    pub(super) fn json(&self) -> Result<Bytes, serde_json::Error> {
        let values = LittleEndianF32s(&self.binary[self.header_length..]);
        let request = InferRequest {
            inputs: [RequestTensor {
                name: "image",
                shape: self.shape,
                datatype: "FP32",
                data: Some(values),
                parameters: None,
            }],
            outputs: [RequestedOutput { name: "logits", parameters: None }],
        };
        serde_json::to_vec(&request).map(Bytes::from)
    }
}

/// `POST /v2/models/{name}/infer`'s body: one input tensor, one output asked for.
#[derive(Serialize)]
struct InferRequest<'a> {
    inputs: [RequestTensor<'a>; 1],
    outputs: [RequestedOutput; 1],
}

#[derive(Serialize)]
struct RequestTensor<'a> {
    name: &'static str,
    shape: [usize; 5],
    datatype: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<LittleEndianF32s<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parameters: Option<BinarySize>,
}

#[derive(Serialize)]
struct BinarySize {
    binary_data_size: usize,
}

#[derive(Serialize)]
struct RequestedOutput {
    name: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    parameters: Option<BinaryOutput>,
}

#[derive(Serialize)]
struct BinaryOutput {
    binary_data: bool,
}

/// FP32 values kept as their little-endian bytes, written out as a JSON array of numbers.
struct LittleEndianF32s<'a>(&'a [u8]);

impl Serialize for LittleEndianF32s<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])))
    }
}

/// The parts of an inference answer (or of a binary answer's JSON header) the runner reads.
#[derive(Deserialize)]
pub(super) struct InferResponse {
    #[serde(default)]
    outputs: Vec<ResponseTensor>,
}

#[derive(Deserialize)]
struct ResponseTensor {
    shape: Vec<usize>,
    datatype: String,
    #[serde(default)]
    data: Option<FlatData>,
    #[serde(default)]
    parameters: Option<TensorParameters>,
}

#[derive(Deserialize)]
struct TensorParameters {
    binary_data_size: Option<u64>,
}

/// Where an answer's logits are.
pub(super) enum Logits {
    /// In the JSON, read.
    Values(Vec<f32>),
    /// In the binary part, right after the header: values this many bytes wide.
    Binary { width: usize },
}

impl InferResponse {
    /// The first output, the logits: FP32 (or FP64) of shape `expected`, in the JSON or in the
    /// binary part; or why they do not fit.
    pub(super) fn logits(self, expected: &[usize]) -> Result<Logits, String> {
        let output = self.outputs.into_iter().next().ok_or("no outputs")?;
        if output.shape != expected {
            return Err(format!("shape {:?}; the card promises {expected:?}", output.shape));
        }
        let width = match output.datatype.as_str() {
            "FP32" => 4,
            "FP64" => 8,
            other => return Err(format!("datatype {other}; logits are FP32")),
        };
        let count = expected.iter().product::<usize>();
        match (output.parameters.and_then(|p| p.binary_data_size), output.data) {
            (Some(bytes), _) if bytes == (count * width) as u64 => Ok(Logits::Binary { width }),
            (Some(bytes), _) => Err(format!("{bytes} bytes of binary data for {count} {} values", output.datatype)),
            (None, Some(FlatData(values))) if values.len() == count => Ok(Logits::Values(values)),
            (None, Some(FlatData(values))) => Err(format!("{} values for shape {expected:?}", values.len())),
            (None, None) => Err("logits without data".into()),
        }
    }
}

/// A tensor's `data`, flat or nested in row-major order, read straight into one buffer.
struct FlatData(Vec<f32>);

impl<'de> Deserialize<'de> for FlatData {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut values = Vec::new();
        deserializer.deserialize_seq(Flatten(&mut values))?;
        Ok(FlatData(values))
    }
}

/// Appends the numbers of one (possibly nested) array to the buffer it holds.
struct Flatten<'a>(&'a mut Vec<f32>);

impl<'de> Visitor<'de> for Flatten<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("numbers, or arrays of them")
    }

    fn visit_f64<E>(self, value: f64) -> Result<(), E> {
        self.0.push(value as f32);
        Ok(())
    }

    fn visit_i64<E>(self, value: i64) -> Result<(), E> {
        self.0.push(value as f32);
        Ok(())
    }

    fn visit_u64<E>(self, value: u64) -> Result<(), E> {
        self.0.push(value as f32);
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Element(&mut *self.0))?.is_some() {}
        Ok(())
    }
}

/// One element of an array: a number or a nested array, appended to the same buffer.
struct Element<'a>(&'a mut Vec<f32>);

impl<'de> serde::de::DeserializeSeed<'de> for Element<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(Flatten(self.0))
    }
}

/// Labels each voxel by its largest logit as the binary `[1, C, k, j, i]` logits arrive,
/// channel after channel, holding one running best per voxel instead of every logit. Ties go
/// to the later channel, as [`argmax_labels`](crate::server::inference::argmax_labels) does.
pub(super) struct StreamingArgmax<'a> {
    channels: &'a [u8],
    width: usize,
    best: Vec<f32>,
    labels: Vec<u8>,
    /// Values read so far.
    seen: usize,
    /// The first bytes of a value split across chunks.
    partial: Vec<u8>,
}

impl<'a> StreamingArgmax<'a> {
    pub(super) fn new(channels: &'a [u8], voxels: usize, width: usize) -> StreamingArgmax<'a> {
        StreamingArgmax {
            channels,
            width,
            best: vec![f32::NEG_INFINITY; voxels],
            labels: vec![channels.first().copied().unwrap_or(0); voxels],
            seen: 0,
            partial: Vec::with_capacity(8),
        }
    }

    /// Takes the next bytes of the logits; refuses bytes beyond the last value.
    pub(super) fn push(&mut self, mut bytes: &[u8]) -> Result<(), String> {
        if !self.partial.is_empty() {
            let needed = (self.width - self.partial.len()).min(bytes.len());
            self.partial.extend_from_slice(&bytes[..needed]);
            bytes = &bytes[needed..];
            if self.partial.len() < self.width {
                return Ok(());
            }
            let value = std::mem::take(&mut self.partial);
            self.take(&value)?;
        }
        let whole = bytes.len() - bytes.len() % self.width;
        for value in bytes[..whole].chunks_exact(self.width) {
            self.take(value)?;
        }
        self.partial.extend_from_slice(&bytes[whole..]);
        Ok(())
    }

    fn take(&mut self, bytes: &[u8]) -> Result<(), String> {
        let voxels = self.best.len();
        let channel = self.seen / voxels.max(1);
        if channel >= self.channels.len() {
            return Err(format!("more than {} values of logits", self.channels.len() * voxels));
        }
        let value = match *bytes {
            [a, b, c, d] => f32::from_le_bytes([a, b, c, d]),
            [a, b, c, d, e, f, g, h] => f64::from_le_bytes([a, b, c, d, e, f, g, h]) as f32,
            _ => return Err(format!("a value of {} bytes", bytes.len())),
        };
        let voxel = self.seen % voxels;
        if channel == 0 || value.total_cmp(&self.best[voxel]).is_ge() {
            self.best[voxel] = value;
            self.labels[voxel] = self.channels[channel];
        }
        self.seen += 1;
        Ok(())
    }

    /// The labels, once every value has arrived.
    pub(super) fn finish(self) -> Result<Vec<u8>, String> {
        let expected = self.channels.len() * self.best.len();
        if self.seen != expected || !self.partial.is_empty() {
            return Err(format!("{} of {expected} values of logits", self.seen));
        }
        Ok(self.labels)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::inference::argmax_labels;
    use serde_json::json;

    fn answer(json: serde_json::Value) -> InferResponse {
        serde_json::from_value(json).unwrap()
    }

    fn values(logits: Result<Logits, String>) -> Vec<f32> {
        match logits.unwrap() {
            Logits::Values(values) => values,
            Logits::Binary { .. } => panic!("binary logits"),
        }
    }

    #[test]
    fn logits_flat_or_nested_of_the_promised_shape() {
        let flat = || {
            answer(
                json!({ "outputs": [{ "name": "logits", "shape": [1, 2, 1, 1, 2], "datatype": "FP32", "data": [0.5, -1, 2, 3] }] }),
            )
        };
        assert_eq!(values(flat().logits(&[1, 2, 1, 1, 2])), vec![0.5, -1.0, 2.0, 3.0]);
        let nested = answer(
            json!({ "outputs": [{ "shape": [1, 2, 1, 1, 2], "datatype": "FP32", "data": [[[[[0.5, -1]]], [[[2, 3]]]]] }] }),
        );
        assert_eq!(values(nested.logits(&[1, 2, 1, 1, 2])), vec![0.5, -1.0, 2.0, 3.0]);
        assert!(flat().logits(&[1, 3, 1, 1, 2]).err().unwrap().contains("the card promises"));
        let short = answer(json!({ "outputs": [{ "shape": [1, 2, 1, 1, 2], "datatype": "FP32", "data": [1, 2, 3] }] }));
        assert!(short.logits(&[1, 2, 1, 1, 2]).err().unwrap().contains("3 values"));
        let text =
            answer(json!({ "outputs": [{ "shape": [1, 2, 1, 1, 2], "datatype": "BYTES", "data": [1, 2, 3, 4] }] }));
        assert!(text.logits(&[1, 2, 1, 1, 2]).err().unwrap().contains("datatype"));
        assert_eq!(answer(json!({})).logits(&[1]).err().unwrap(), "no outputs");
        // Strings are no tensor data: the answer does not parse.
        let strings = json!({ "outputs": [{ "shape": [1], "datatype": "BYTES", "data": ["a"] }] });
        assert!(serde_json::from_value::<InferResponse>(strings).is_err());
    }

    #[test]
    fn binary_logits_must_be_the_size_of_the_promised_shape() {
        let header = |size: u64, datatype: &str| {
            answer(
                json!({ "outputs": [{ "name": "logits", "shape": [1, 2, 1, 1, 2], "datatype": datatype, "parameters": { "binary_data_size": size } }] }),
            )
        };
        assert!(matches!(header(16, "FP32").logits(&[1, 2, 1, 1, 2]), Ok(Logits::Binary { width: 4 })));
        assert!(matches!(header(32, "FP64").logits(&[1, 2, 1, 1, 2]), Ok(Logits::Binary { width: 8 })));
        assert!(header(12, "FP32").logits(&[1, 2, 1, 1, 2]).err().unwrap().contains("12 bytes of binary data"));
        let empty = answer(json!({ "outputs": [{ "shape": [1, 2, 1, 1, 2], "datatype": "FP32" }] }));
        assert_eq!(empty.logits(&[1, 2, 1, 1, 2]).err().unwrap(), "logits without data");
    }

    #[test]
    fn the_request_is_the_protocols_binary_extension_or_its_json() {
        let request = ImageRequest::new(vec![0.5, -2.0], [1, 1, 1, 1, 2]).unwrap();
        let (body, header_length) = request.binary();
        let header: serde_json::Value = serde_json::from_slice(&body[..header_length]).unwrap();
        assert_eq!(
            header,
            json!({
                "inputs": [{ "name": "image", "shape": [1, 1, 1, 1, 2], "datatype": "FP32", "parameters": { "binary_data_size": 8 } }],
                "outputs": [{ "name": "logits", "parameters": { "binary_data": true } }],
            })
        );
        assert_eq!(&body[header_length..], [0.5f32.to_le_bytes(), (-2.0f32).to_le_bytes()].concat());
        let json: serde_json::Value = serde_json::from_slice(&request.json().unwrap()).unwrap();
        assert_eq!(
            json,
            json!({
                "inputs": [{ "name": "image", "shape": [1, 1, 1, 1, 2], "datatype": "FP32", "data": [0.5, -2.0] }],
                "outputs": [{ "name": "logits" }],
            })
        );
    }

    #[test]
    fn streamed_labels_equal_the_argmax_of_all_logits_however_the_bytes_are_cut() {
        let (channels, voxels) = ([0u8, 3, 7], 50);
        // Ties included: values repeat across channels.
        let logits: Vec<f32> = (0..channels.len() * voxels).map(|n| ((n * 37) % 11) as f32 - 5.0).collect();
        let expected = argmax_labels(&logits, &channels, voxels);
        for (width, bytes) in [
            (4, logits.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>()),
            (8, logits.iter().flat_map(|v| f64::from(*v).to_le_bytes()).collect()),
        ] {
            for cut in [1, 3, 5, 7, 64, bytes.len()] {
                let mut argmax = StreamingArgmax::new(&channels, voxels, width);
                for chunk in bytes.chunks(cut) {
                    argmax.push(chunk).unwrap();
                }
                assert_eq!(argmax.finish().unwrap(), expected, "width {width}, chunks of {cut}");
            }
            let mut short = StreamingArgmax::new(&channels, voxels, width);
            short.push(&bytes[..bytes.len() - 1]).unwrap();
            assert!(short.finish().unwrap_err().contains("of 150 values"));
            let mut long = StreamingArgmax::new(&channels, voxels, width);
            assert!(long.push(&[bytes.as_slice(), &bytes[..width]].concat()).unwrap_err().contains("more than 150"));
        }
    }
}
