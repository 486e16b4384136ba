// Any unknown route.

import { h } from '../util.js';
import { emptyState } from '../ui.js';

export function mount(root) {
  root.append(emptyState({
    iconName: 'alert', title: 'Page not found', testid: 'not-found',
    text: 'This address doesn\u2019t match any page of the hub.',
    actions: [h('a', { class: 'btn btn-primary', href: '#/' }, 'Go to cameras')],
  }));
}
