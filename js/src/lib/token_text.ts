// What a token reads as, as text: the tokens of a widget's traits (`tokens`, `display_tokens`,
// `token_kinds`; the readable forms are decided in Python, llmasos_widgets/_readable_tokens.py)
// and their labels, with whitespace as quiet marks (␣ space, ⏎ newline, ⇥ tab, control
// pictures) and a continuation (the later bytes of a character shown on an earlier token) as a
// quiet ◌. Used by every view that labels tokens: the token strip (lib/token_strip.ts), the
// pattern and line views, the saliency matrix.
// Token strings are data: they are only ever written with textContent.

/** Kinds written by Python's show_tokens (llmasos_widgets/_readable_tokens.py). */
export type TokenKind = "text" | "special" | "continuation" | "bytes";

/** One token: the tokenizer's raw string, the text a reader sees, and its kind. */
export interface ShownToken {
  raw: string;
  text: string;
  kind: TokenKind;
  /** For a continuation: the token that shows its character; otherwise its own index. */
  lead: number;
}

/** A run of a token's label; quiet runs are marks (whitespace, continuation, empty). */
export interface TokenPiece {
  text: string;
  quiet: boolean;
}

export const CONTINUATION_MARK = "◌";
const KINDS: readonly string[] = ["text", "special", "continuation", "bytes"];
const MARKS: Record<string, string> = { " ": "␣", "\n": "⏎", "\t": "⇥", "\r": "␍" };

/**
 * Tokens from the widget's traits. Without display strings (an older kernel) the raw strings
 * are shown as they are. AttentionWidget sends compact forms at length (widgets/attention.py
 * `_elided_display`, `_sparse_kinds`): display [] = the raw strings; kinds shorter than the
 * tokens = "index:kind" entries for the tokens that are not "text".
 */
export function shownTokens(raw: readonly string[], display?: readonly string[] | null, kinds?: readonly string[] | null): ShownToken[] {
  const fullDisplay = !!display && display.length === raw.length;
  const usable = !!kinds && (fullDisplay || (display?.length === 0 && raw.length > 0));
  const kindOf = usable ? tokenKinds(raw.length, kinds) : null;
  let lead = 0;
  return raw.map((r, i) => {
    const kind = kindOf ? kindOf[i] : "text";
    if (kind !== "continuation") lead = i;
    return { raw: r, text: fullDisplay && usable ? display[i] : r, kind, lead };
  });
}

function tokenKinds(n: number, kinds: readonly string[]): TokenKind[] {
  if (kinds.length === n) return kinds.map((k) => (KINDS.includes(k) ? k : "text") as TokenKind);
  const out: TokenKind[] = new Array(n).fill("text");
  for (const entry of kinds) {
    const at = entry.indexOf(":");
    const i = Number(entry.slice(0, at));
    const kind = entry.slice(at + 1);
    if (at > 0 && Number.isInteger(i) && i >= 0 && i < n && KINDS.includes(kind)) out[i] = kind as TokenKind;
  }
  return out;
}

/** The runs a token is drawn with: whitespace and control characters as quiet marks. */
export function tokenPieces(token: Pick<ShownToken, "text" | "kind">): TokenPiece[] {
  if (token.kind === "continuation") return [{ text: CONTINUATION_MARK, quiet: true }];
  if (token.text.length === 0) return [{ text: "∅", quiet: true }];
  if (token.kind === "special" || token.kind === "bytes") return [{ text: token.text, quiet: false }];
  const pieces: TokenPiece[] = [];
  for (const ch of token.text) {
    const code = ch.codePointAt(0) ?? 0;
    const mark = MARKS[ch] ?? (code < 0x20 ? String.fromCharCode(0x2400 + code) : undefined);
    const quiet = mark !== undefined;
    const last = pieces[pieces.length - 1];
    if (last && last.quiet === quiet) last.text += mark ?? ch;
    else pieces.push({ text: mark ?? ch, quiet });
  }
  return pieces;
}

/** The whole label as one string (canvas labels, tooltips). */
export function tokenLabel(token: Pick<ShownToken, "text" | "kind">): string {
  return tokenPieces(token)
    .map((p) => p.text)
    .join("");
}

/** Write a token's label into `el` as text nodes, quiet runs in span.llmw-mark. */
export function writeToken(el: HTMLElement, token: Pick<ShownToken, "text" | "kind">): void {
  el.replaceChildren(
    ...tokenPieces(token).map((piece) => {
      if (!piece.quiet) return document.createTextNode(piece.text);
      const mark = document.createElement("span");
      mark.className = "llmw-mark";
      mark.textContent = piece.text;
      return mark;
    }),
  );
}

/** Tooltip: position, the raw string (JSON-quoted, exact) and, for a continuation, whose part. */
export function tokenTitle(tokens: readonly ShownToken[], i: number): string {
  const token = tokens[i];
  const base = `${i}: ${JSON.stringify(token.raw)}`;
  if (token.kind !== "continuation") return base;
  return `${base} · rest of ${JSON.stringify(tokens[token.lead]?.text ?? "")} (token ${token.lead})`;
}
