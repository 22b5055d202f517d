//! Edits to a model's ONNX graph before ONNX Runtime sees it.
//!
//! ONNX Runtime's CPU `PRelu` with a per-channel slope runs one scalar, branching loop per channel (seen with
//! `perf` in the eight-camera run: 17% of the agent's CPU time in that loop alone, 36% of all inference). SFace
//! has 27 of them. Written as `Relu`, `Sub`, `Mul`, `Add` instead, every step runs on ONNX Runtime's vectorised
//! kernels and gives the same bits: `x - relu(x)` is exactly `min(x, 0)`, and adding an exact zero changes
//! nothing. SFace on one thread goes from 21 ms to 10 ms per face.
//!
//! The edit works on the protobuf wire format directly, so no ONNX or protobuf library is needed: only the
//! model's `graph` field and the graph's `node` fields are decoded, every other byte is copied as it is.

use std::fmt;

/// What is done to a graph before a session is created from it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum GraphEdit {
    /// The file as stored (benchmarks and the equality tests use it as the reference).
    AsStored,
    /// Rewrites that speed up ONNX Runtime's CPU kernels without changing any output bit. Applied on the CPU
    /// provider only: TensorRT and CUDA have fused kernels for the original operators.
    #[default]
    ForCpu,
}

/// A model file that is not the protobuf it claims to be.
#[derive(Debug, PartialEq, Eq)]
pub struct MalformedModel(pub &'static str);

impl fmt::Display for MalformedModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "not a well-formed ONNX protobuf: {}", self.0)
    }
}

/// `ModelProto.graph`, `GraphProto.node`, and the `NodeProto` fields that are read or written.
const MODEL_GRAPH: u32 = 7;
const GRAPH_NODE: u32 = 1;
const NODE_INPUT: u32 = 1;
const NODE_OUTPUT: u32 = 2;
const NODE_NAME: u32 = 3;
const NODE_OP_TYPE: u32 = 4;
const NODE_DOMAIN: u32 = 7;

const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;
const FIXED32: u8 = 5;

/// Rewrites every `PRelu` of the default domain as `Relu`, `Sub`, `Mul`, `Add`. Returns the new model and how
/// many nodes were rewritten, or `None` when the model has no `PRelu` (the caller then loads the file as it
/// is).
pub fn vectorise_prelu(model: &[u8]) -> Result<Option<(Vec<u8>, usize)>, MalformedModel> {
    let mut rewritten = 0;
    let mut out = Vec::with_capacity(model.len() + 4096);
    for field in Fields::new(model) {
        let field = field?;
        if field.number == MODEL_GRAPH && field.wire == LEN {
            let graph = rewrite_graph(field.payload, &mut rewritten)?;
            put_len_field(&mut out, MODEL_GRAPH, &graph);
        } else {
            out.extend_from_slice(field.raw);
        }
    }
    Ok((rewritten > 0).then_some((out, rewritten)))
}

fn rewrite_graph(graph: &[u8], rewritten: &mut usize) -> Result<Vec<u8>, MalformedModel> {
    let mut out = Vec::with_capacity(graph.len() + 4096);
    for field in Fields::new(graph) {
        let field = field?;
        if field.number != GRAPH_NODE || field.wire != LEN {
            out.extend_from_slice(field.raw);
            continue;
        }
        match Node::parse(field.payload)?.prelu() {
            Some((x, slope, y, name)) => {
                for node in prelu_replacement(x, slope, y, name) {
                    put_len_field(&mut out, GRAPH_NODE, &node);
                }
                *rewritten += 1;
            }
            None => out.extend_from_slice(field.raw),
        }
    }
    Ok(out)
}

/// `y = relu(x) + slope * (x - relu(x))`, in graph order. Intermediate names derive from the node's output,
/// which ONNX requires to be unique in the graph.
fn prelu_replacement(x: &str, slope: &str, y: &str, name: &str) -> [Vec<u8>; 4] {
    let tmp = |s: &str| format!("{y}/checkpoint_prelu/{s}");
    let (relu, neg, scaled) = (tmp("relu"), tmp("negative_part"), tmp("scaled"));
    let label = if name.is_empty() { y } else { name };
    [
        encode_node("Relu", &[x], &relu, &format!("{label}/relu")),
        encode_node("Sub", &[x, &relu], &neg, &format!("{label}/sub")),
        encode_node("Mul", &[&neg, slope], &scaled, &format!("{label}/mul")),
        encode_node("Add", &[&relu, &scaled], y, &format!("{label}/add")),
    ]
}

fn encode_node(op: &str, inputs: &[&str], output: &str, name: &str) -> Vec<u8> {
    let mut n = Vec::new();
    for i in inputs {
        put_len_field(&mut n, NODE_INPUT, i.as_bytes());
    }
    put_len_field(&mut n, NODE_OUTPUT, output.as_bytes());
    put_len_field(&mut n, NODE_NAME, name.as_bytes());
    put_len_field(&mut n, NODE_OP_TYPE, op.as_bytes());
    n
}

/// The parts of a `NodeProto` the rewrite looks at.
#[derive(Default)]
struct Node<'a> {
    inputs: Vec<&'a str>,
    outputs: Vec<&'a str>,
    name: &'a str,
    op_type: &'a str,
    domain: &'a str,
    /// Attributes or anything else: such a node is left alone.
    other_fields: bool,
}

impl<'a> Node<'a> {
    fn parse(bytes: &'a [u8]) -> Result<Self, MalformedModel> {
        let mut n = Node::default();
        for field in Fields::new(bytes) {
            let field = field?;
            let text = || {
                std::str::from_utf8(field.payload)
                    .map_err(|_| MalformedModel("node string is not UTF-8"))
            };
            match (field.number, field.wire) {
                (NODE_INPUT, LEN) => n.inputs.push(text()?),
                (NODE_OUTPUT, LEN) => n.outputs.push(text()?),
                (NODE_NAME, LEN) => n.name = text()?,
                (NODE_OP_TYPE, LEN) => n.op_type = text()?,
                (NODE_DOMAIN, LEN) => n.domain = text()?,
                _ => n.other_fields = true,
            }
        }
        Ok(n)
    }

    /// `(x, slope, y, name)` for a plain ONNX `PRelu`.
    fn prelu(&self) -> Option<(&'a str, &'a str, &'a str, &'a str)> {
        let standard = matches!(self.domain, "" | "ai.onnx");
        match (self.inputs.as_slice(), self.outputs.as_slice()) {
            ([x, slope], [y])
                if self.op_type == "PRelu"
                    && standard
                    && !self.other_fields
                    && !x.is_empty()
                    && !slope.is_empty()
                    && !y.is_empty() =>
            {
                Some((x, slope, y, self.name))
            }
            _ => None,
        }
    }
}

/// One field of a protobuf message: its number, wire type, payload (for `LEN`) and the raw bytes including
/// the key, for copying it unchanged.
struct Field<'a> {
    number: u32,
    wire: u8,
    payload: &'a [u8],
    raw: &'a [u8],
}

struct Fields<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Fields<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    fn varint(&mut self) -> Result<u64, MalformedModel> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self
                .buf
                .get(self.pos)
                .ok_or(MalformedModel("truncated varint"))?;
            self.pos += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(MalformedModel("varint longer than 10 bytes"))
    }

    fn take(&mut self, n: u64) -> Result<&'a [u8], MalformedModel> {
        let end = usize::try_from(n)
            .ok()
            .and_then(|n| self.pos.checked_add(n))
            .filter(|end| *end <= self.buf.len())
            .ok_or(MalformedModel("field runs past the end of its message"))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn next_field(&mut self) -> Result<Field<'a>, MalformedModel> {
        let start = self.pos;
        let key = self.varint()?;
        let number =
            u32::try_from(key >> 3).map_err(|_| MalformedModel("field number too large"))?;
        let wire = (key & 7) as u8;
        let payload = match wire {
            VARINT => {
                self.varint()?;
                &[][..]
            }
            FIXED64 => self.take(8)?,
            FIXED32 => self.take(4)?,
            LEN => {
                let n = self.varint()?;
                self.take(n)?
            }
            _ => return Err(MalformedModel("unsupported wire type (groups)")),
        };
        if number == 0 {
            return Err(MalformedModel("field number 0"));
        }
        Ok(Field {
            number,
            wire,
            payload,
            raw: &self.buf[start..self.pos],
        })
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<Field<'a>, MalformedModel>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.buf.len() {
            return None;
        }
        let r = self.next_field();
        if r.is_err() {
            // Stop after the first error: the rest of the buffer cannot be framed.
            self.pos = self.buf.len();
        }
        Some(r)
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_len_field(out: &mut Vec<u8>, number: u32, payload: &[u8]) {
    put_varint(out, (u64::from(number) << 3) | u64::from(LEN));
    put_varint(out, payload.len() as u64);
    out.extend_from_slice(payload);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A model with a producer string (field 2), an opset import (field 8) and a graph holding a `Conv`, a
    /// `PRelu` and a `PRelu` of another domain.
    fn model() -> Vec<u8> {
        let mut graph = Vec::new();
        put_len_field(
            &mut graph,
            GRAPH_NODE,
            &encode_node("Conv", &["in", "w"], "c", "conv0"),
        );
        put_len_field(
            &mut graph,
            GRAPH_NODE,
            &encode_node("PRelu", &["c", "slope"], "p", "prelu0"),
        );
        let mut custom = encode_node("PRelu", &["p", "slope"], "q", "custom");
        put_len_field(&mut custom, NODE_DOMAIN, b"com.example");
        put_len_field(&mut graph, GRAPH_NODE, &custom);
        put_len_field(&mut graph, 2, b"graph-name");
        let mut m = Vec::new();
        put_varint(&mut m, 1 << 3); // ir_version = 8
        put_varint(&mut m, 8);
        put_len_field(&mut m, 2, b"producer");
        put_len_field(&mut m, MODEL_GRAPH, &graph);
        put_len_field(&mut m, 8, &[0x12, 0x00]);
        m
    }

    fn nodes(model: &[u8]) -> Vec<(String, Vec<String>, Vec<String>, String)> {
        let graph = Fields::new(model)
            .map(Result::unwrap)
            .find(|f| f.number == MODEL_GRAPH)
            .unwrap()
            .payload;
        Fields::new(graph)
            .map(Result::unwrap)
            .filter(|f| f.number == GRAPH_NODE)
            .map(|f| {
                let n = Node::parse(f.payload).unwrap();
                let owned = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
                (
                    n.op_type.to_string(),
                    owned(&n.inputs),
                    owned(&n.outputs),
                    n.domain.to_string(),
                )
            })
            .collect()
    }

    #[test]
    fn prelu_becomes_relu_sub_mul_add_wired_to_the_same_tensors() {
        let (edited, n) = vectorise_prelu(&model()).unwrap().unwrap();
        assert_eq!(n, 1);
        let got = nodes(&edited);
        let ops: Vec<&str> = got.iter().map(|n| n.0.as_str()).collect();
        assert_eq!(ops, ["Conv", "Relu", "Sub", "Mul", "Add", "PRelu"]);
        let (relu, neg, scaled) = (&got[1].2[0], &got[2].2[0], &got[3].2[0]);
        assert_eq!(got[1].1, ["c"]);
        assert_eq!(got[2].1, ["c".to_string(), relu.clone()]);
        assert_eq!(got[3].1, [neg.clone(), "slope".to_string()]);
        assert_eq!(got[4].1, [relu.clone(), scaled.clone()]);
        assert_eq!(
            got[4].2,
            ["p"],
            "the original output name is kept for the consumers"
        );
        assert_eq!(
            got[5].3, "com.example",
            "another domain's PRelu is not ours to change"
        );
    }

    #[test]
    fn every_other_byte_is_kept() {
        let (edited, _) = vectorise_prelu(&model()).unwrap().unwrap();
        let fields = |m: &[u8]| -> Vec<(u32, Vec<u8>)> {
            Fields::new(m)
                .map(Result::unwrap)
                .filter(|f| f.number != MODEL_GRAPH)
                .map(|f| (f.number, f.raw.to_vec()))
                .collect()
        };
        assert_eq!(fields(&edited), fields(&model()));
        let graph_name = |m: &[u8]| {
            let g = Fields::new(m)
                .map(Result::unwrap)
                .find(|f| f.number == MODEL_GRAPH)
                .unwrap()
                .payload;
            Fields::new(g)
                .map(Result::unwrap)
                .find(|f| f.number == 2)
                .map(|f| f.payload.to_vec())
        };
        assert_eq!(graph_name(&edited), Some(b"graph-name".to_vec()));
    }

    #[test]
    fn a_model_without_prelu_is_left_to_load_from_its_file() {
        let mut graph = Vec::new();
        put_len_field(
            &mut graph,
            GRAPH_NODE,
            &encode_node("Relu", &["x"], "y", "r"),
        );
        let mut m = Vec::new();
        put_len_field(&mut m, MODEL_GRAPH, &graph);
        assert_eq!(vectorise_prelu(&m), Ok(None));
    }

    #[test]
    fn truncated_or_garbage_input_is_an_error_not_a_panic() {
        let m = model();
        for cut in [1, 5, m.len() / 2, m.len() - 1] {
            assert!(vectorise_prelu(&m[..cut]).is_err(), "cut at {cut}");
        }
        assert!(vectorise_prelu(&[0x0b, 0x00]).is_err(), "group wire type");
        assert!(vectorise_prelu(&[0xff; 12]).is_err(), "endless varint");
        let mut huge = Vec::new();
        put_varint(&mut huge, (u64::from(MODEL_GRAPH) << 3) | u64::from(LEN));
        put_varint(&mut huge, u64::MAX);
        assert!(vectorise_prelu(&huge).is_err(), "length past the end");
    }
}
