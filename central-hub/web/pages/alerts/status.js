// An alert's status as the pages show it: the badge's colour, and which statuses still wait for a review.

import { tv } from '../../i18n.js';
import { badge } from '../common.js';

const STATUS_KIND = { candidate: 'warn', confirmed_once: 'info', confirmed: 'danger', dismissed: 'neutral' };

/** Statuses a reviewer can still decide on: the filter's "open" and the review form. */
export const OPEN = ['candidate', 'confirmed_once'];

export function statusBadge(status, props) {
  return badge(tv('alert_status', status), STATUS_KIND[status] || 'neutral', props);
}
