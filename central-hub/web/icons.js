// Navigation icons as inline SVG (no icon font, no CDN; emoji and symbol glyphs are missing from the fonts
// of many kiosk machines). Stroked with the text colour.

import { s } from './dom.js';

const PATHS = {
  alerts: ['M6 8a6 6 0 0 1 12 0c0 7 3 9 3 9H3s3-2 3-9', 'M10.3 21a1.94 1.94 0 0 0 3.4 0'],
  dashboard: ['M3 3v18h18', 'M7 16v-5', 'M12 16V7', 'M17 16v-9'],
  watchlists: ['M8 6h13', 'M8 12h13', 'M8 18h13', 'M3.5 6h.01', 'M3.5 12h.01', 'M3.5 18h.01'],
  records: ['M3 5h18v14H3z', 'M9 12a2 2 0 1 0 0-4 2 2 0 0 0 0 4z', 'M5.5 16a3.5 3.5 0 0 1 7 0', 'M15 9h3', 'M15 13h3'],
  lodging: ['M2 4v16', 'M2 9h17a3 3 0 0 1 3 3v8', 'M2 16h20', 'M6 9v7'],
  exams: ['M9 2h6v4H9z', 'M16 4h2a2 2 0 0 1 2 2v14a2 2 0 0 1-2 2H6a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2h2', 'M9 14l2 2 4-4'],
  audit: ['M12 2l8 3v6c0 5-3.5 9-8 11-4.5-2-8-6-8-11V5z', 'M9 12l2 2 4-4'],
  users: ['M12 12a4 4 0 1 0 0-8 4 4 0 0 0 0 8z', 'M4 21a8 8 0 0 1 16 0'],
};

export function icon(name) {
  return s(
    'svg',
    { viewBox: '0 0 24 24', width: '20', height: '20', fill: 'none', stroke: 'currentColor', 'stroke-width': '2', 'stroke-linecap': 'round', 'stroke-linejoin': 'round', 'aria-hidden': 'true', focusable: 'false', class: 'icon' },
    (PATHS[name] || []).map((d) => s('path', { d })),
  );
}
