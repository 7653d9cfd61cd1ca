/**
 * Building the page: every text goes in through textContent or an attribute, never as markup,
 * so whatever a label or an upstream's message holds is shown as text.
 */
type Child = Node | string | number | null | undefined | false;
/** An event handler; one that returns a promise (an action's request) is awaited by `h`. */
type Handler = (e: Event) => void | Promise<void>;
type Attrs = Record<string, string | number | boolean | null | undefined | Handler>;

export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Attrs = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

const SVG_NS = 'http://www.w3.org/2000/svg';

export function svg(tag: string, attrs: Attrs = {}, ...children: Child[]): SVGElement {
  const el = document.createElementNS(SVG_NS, tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

function setAttrs(el: Element, attrs: Attrs): void {
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (typeof value === 'function') el.addEventListener(name.replace(/^on/, ''), (e) => void Promise.resolve(value(e)).catch(reportError));
    else el.setAttribute(name, value === true ? '' : String(value));
  }
}

export function append(el: Element, children: Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    el.append(typeof c === 'string' || typeof c === 'number' ? document.createTextNode(String(c)) : c);
  }
}

export function clear(el: Element, ...children: Child[]): void {
  el.replaceChildren();
  append(el, children);
}

/** A link inside the console: followed without reloading the page. */
export function link(href: string, attrs: Attrs, ...children: Child[]): HTMLAnchorElement {
  return h('a', { href, 'data-internal': true, ...attrs }, ...children);
}

/** Goes to another page of the console (the app draws it on popstate). */
export function navigate(href: string): void {
  history.pushState(null, '', href);
  window.dispatchEvent(new PopStateEvent('popstate'));
}
