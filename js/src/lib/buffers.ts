// Decoding of binary payloads sent by the kernel (see llmasos_widgets/widgets/_base.py).
// Tensors never travel as JSON float lists: a trait holds {view, dtype, shape} where
// `view` arrives as a DataView, and custom messages carry raw buffers next to JSON metadata.
// Typed arrays are always built from byteOffset/byteLength: a DataView may be a window
// into a larger ArrayBuffer.

export type DType = "float32" | "uint8" | "int32" | "int64";

/** Trait payload written by `tensor_payload()` in _base.py. */
export interface TensorPayload {
  view: DataView | ArrayBuffer | ArrayBufferView;
  dtype: DType;
  shape: number[];
}

export interface Tensor<A extends Float32Array | Uint8Array | Int32Array> {
  data: A;
  shape: number[];
}

const BYTES_PER_ELEMENT: Record<DType, number> = { float32: 4, uint8: 1, int32: 4, int64: 8 };

/** A DataView / ArrayBuffer / typed array as plain bytes, without copying. */
export function asBytes(source: DataView | ArrayBuffer | ArrayBufferView): Uint8Array {
  if (source instanceof ArrayBuffer) return new Uint8Array(source);
  return new Uint8Array(source.buffer, source.byteOffset, source.byteLength);
}

/** Float32 view of little-endian bytes; copies only when the offset is misaligned. */
export function asFloat32(source: DataView | ArrayBuffer | ArrayBufferView): Float32Array {
  const bytes = asBytes(source);
  if (bytes.byteLength % 4 !== 0) {
    throw new Error(`float32 buffer has ${bytes.byteLength} bytes, not a multiple of 4`);
  }
  if (bytes.byteOffset % 4 === 0) {
    return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
  }
  return new Float32Array(bytes.slice().buffer);
}

function product(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Decode a {view, dtype, shape} trait payload and check its size against the shape. */
export function decodeTensor(payload: TensorPayload): Tensor<Float32Array | Uint8Array> {
  const expected = product(payload.shape) * (BYTES_PER_ELEMENT[payload.dtype] ?? NaN);
  const bytes = asBytes(payload.view);
  if (bytes.byteLength !== expected) {
    throw new Error(
      `tensor ${payload.dtype}${JSON.stringify(payload.shape)} needs ${expected} bytes, got ${bytes.byteLength}`,
    );
  }
  if (payload.dtype === "float32") return { data: asFloat32(bytes), shape: payload.shape };
  if (payload.dtype === "uint8") return { data: bytes, shape: payload.shape };
  throw new Error(`unsupported dtype '${payload.dtype}' (expected float32 or uint8)`);
}

/** zlib ("deflate") decompression with the browser's built-in DecompressionStream. */
export async function inflate(bytes: Uint8Array): Promise<Uint8Array> {
  const source = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(bytes);
      controller.close();
    },
  });
  const stream = source.pipeThrough(new DecompressionStream("deflate") as unknown as TransformStream<Uint8Array, Uint8Array>);
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/**
 * One head's attention pattern as sent by the kernel: uint8 levels scaled per query row.
 * weight(i, j) = q[i, j] * rowScale[i] / 255, with rowScale[i] = max_j pattern[i, j],
 * so every row keeps 256 levels (max error rowScale[i] / 510) even for diffuse heads.
 * `lower` means only j <= i is stored, packed row after row (causal attention).
 */
export interface QuantizedPattern {
  layer: number;
  head: number;
  n: number;
  lower: boolean;
  rowScale: Float32Array;
  q: Uint8Array;
}

/** Metadata of a {"type": "pattern"} message (see AttentionWidget._pattern_message). */
export interface PatternMessage {
  type: "pattern";
  layer: number;
  head: number;
  n_tokens: number;
  layout: "lower" | "full";
  encoding: "deflate" | "raw";
}

export function packedLength(n: number, lower: boolean): number {
  return lower ? (n * (n + 1)) / 2 : n * n;
}

/** Offset of element (i, 0) in the packed level array. */
export function rowOffset(n: number, lower: boolean, i: number): number {
  return lower ? (i * (i + 1)) / 2 : i * n;
}

/** Build a pattern from a message and its two buffers [rowScale float32, levels uint8]. */
export async function decodePatternMessage(
  msg: PatternMessage,
  buffers: readonly (DataView | ArrayBuffer | ArrayBufferView)[],
): Promise<QuantizedPattern> {
  if (buffers.length !== 2) throw new Error(`pattern message needs 2 buffers, got ${buffers.length}`);
  const lower = msg.layout === "lower";
  const rowScale = asFloat32(buffers[0]);
  const raw = asBytes(buffers[1]);
  const q = msg.encoding === "deflate" ? await inflate(raw) : raw;
  const n = msg.n_tokens;
  if (rowScale.length !== n || q.length !== packedLength(n, lower)) {
    throw new Error(
      `pattern L${msg.layer}H${msg.head}: ${rowScale.length} scales / ${q.length} levels do not fit n=${n}`,
    );
  }
  return { layer: msg.layer, head: msg.head, n, lower, rowScale, q };
}
