/**
 * The dashboard's whole rendering layer: `h` builds an element from a tag,
 * attributes and children (text is always a text node, so server strings
 * are never parsed as HTML); `swap` replaces a region's children while
 * keeping keyboard focus and form values on elements with the same id, so a
 * poll that re-renders the fleet does not pull focus away from a keyboard
 * user or reset a half-made choice.
 */
type Child = Node | string | number | null | undefined | false;
type Attrs = Record<string, string | number | boolean | null | undefined | ((event: Event) => void)>;

export function h(tag: string, attrs: Attrs = {}, ...children: Array<Child | Child[]>): HTMLElement {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (typeof value === "function") element.addEventListener(name.slice(2).toLowerCase(), value);
    else if (value === true) element.setAttribute(name, "");
    else element.setAttribute(name, String(value));
  }
  append(element, children);
  return element;
}

function append(parent: Node, children: Array<Child | Child[]>): void {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    parent.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

const svgNs = "http://www.w3.org/2000/svg";

export function svg(
  tag: string,
  attrs: Record<string, string | number> = {},
  ...children: Node[]
): SVGElement {
  const element = document.createElementNS(svgNs, tag);
  for (const [name, value] of Object.entries(attrs)) element.setAttribute(name, String(value));
  for (const child of children) element.appendChild(child);
  return element;
}

type FormControl = HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement;

export function swap(region: HTMLElement, ...children: Array<Child | Child[]>): void {
  const active = document.activeElement;
  const focusId = active instanceof HTMLElement && region.contains(active) ? active.id : "";
  const values = new Map<string, string>();
  for (const control of region.querySelectorAll<FormControl>("input[id], select[id], textarea[id]"))
    values.set(control.id, control.value);
  region.replaceChildren();
  append(region, children);
  for (const [id, value] of values) {
    const control = region.querySelector<FormControl>(`#${CSS.escape(id)}`);
    if (control === null) continue;
    // A select keeps the old choice only while that option is still offered.
    if (!(control instanceof HTMLSelectElement) || [...control.options].some((o) => o.value === value))
      control.value = value;
  }
  if (focusId !== "") document.getElementById(focusId)?.focus();
}
