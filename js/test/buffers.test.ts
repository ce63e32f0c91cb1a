import { deflateSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import {
  type PatternMessage,
  asFloat32,
  decodePatternMessage,
  decodeTensor,
  packedLength,
  rowOffset,
} from "../src/lib/buffers";
import { weight } from "../src/lib/pattern";

/** The same encoding as llmasos_widgets/widgets/_base.py::encode_pattern (lower triangle). */
function encodeLower(levels: number[][], rowScale: number[]): { scale: Uint8Array; packed: Uint8Array } {
  const packed = new Uint8Array(levels.flatMap((row, i) => row.slice(0, i + 1)));
  return { scale: new Uint8Array(new Float32Array(rowScale).buffer), packed };
}

const LEVELS = [
  [255, 0, 0, 0],
  [128, 255, 0, 0],
  [0, 3, 255, 0],
  [255, 1, 2, 40],
];
const SCALE = [1, 0.5, 0.25, 0.75];

describe("decodeTensor", () => {
  it("reads float32 from a DataView window into a larger buffer", () => {
    const backing = new ArrayBuffer(32);
    new Float32Array(backing, 8, 4).set([1, 2, 3, 4]);
    const view = new DataView(backing, 8, 16);
    const t = decodeTensor({ view, dtype: "float32", shape: [2, 2] });
    expect(Array.from(t.data)).toEqual([1, 2, 3, 4]);
    expect(t.data.buffer).toBe(backing); // no copy when aligned
  });

  it("copies misaligned float32 data instead of throwing", () => {
    const backing = new Uint8Array(13);
    backing.set(new Uint8Array(new Float32Array([1.5, -2]).buffer), 5);
    expect(Array.from(asFloat32(new DataView(backing.buffer, 5, 8)))).toEqual([1.5, -2]);
  });

  it("rejects a buffer that does not match the shape", () => {
    expect(() => decodeTensor({ view: new DataView(new ArrayBuffer(12)), dtype: "float32", shape: [2, 2] })).toThrow(
      /needs 16 bytes, got 12/,
    );
  });
});

describe("decodePatternMessage", () => {
  const msg: PatternMessage = { type: "pattern", layer: 1, head: 2, n_tokens: 4, layout: "lower", encoding: "raw" };

  it("packs the lower triangle row by row", () => {
    expect(packedLength(4, true)).toBe(10);
    expect(rowOffset(4, true, 3)).toBe(6);
    expect(rowOffset(4, false, 3)).toBe(12);
  });

  it("decodes raw levels to levels * rowScale / 255", async () => {
    const { scale, packed } = encodeLower(LEVELS, SCALE);
    const p = await decodePatternMessage(msg, [new DataView(scale.buffer), new DataView(packed.buffer)]);
    for (let i = 0; i < 4; i++) {
      for (let j = 0; j < 4; j++) {
        expect(weight(p, i, j)).toBeCloseTo((LEVELS[i][j] * SCALE[i]) / 255, 6);
      }
    }
    expect(weight(p, 0, 3)).toBe(0); // above the diagonal: not stored, zero
  });

  it("inflates zlib-deflated levels to the same pattern", async () => {
    const { scale, packed } = encodeLower(LEVELS, SCALE);
    const deflated = new Uint8Array(deflateSync(packed));
    const p = await decodePatternMessage({ ...msg, encoding: "deflate" }, [scale, new DataView(deflated.buffer, deflated.byteOffset, deflated.byteLength)]);
    expect(Array.from(p.q)).toEqual(Array.from(packed));
    expect(p.layer).toBe(1);
    expect(p.head).toBe(2);
  });

  it("refuses levels that do not fit n_tokens", async () => {
    const { scale } = encodeLower(LEVELS, SCALE);
    await expect(decodePatternMessage(msg, [scale, new Uint8Array(16)])).rejects.toThrow(/do not fit n=4/);
  });
});
