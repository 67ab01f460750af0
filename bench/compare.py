#!/usr/bin/env python3
"""compare.py RUNS.tsv — the one table of a same-run benchmark: per workload the
median server cost of each peer and of tlsgate, tlsgate's ratio to each peer,
and the crypto floor from results/crypto-floor.txt (measured in the same run by
`make bench`). Lower is better for every cost; W3 also shows requests/s."""
import collections, os, re, statistics as st, sys

here = os.path.dirname(os.path.abspath(__file__))
path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, 'results/runs.tsv')
floor = {}
try:
    for line in open(os.path.join(here, 'results/crypto-floor.txt')):
        m = re.match(r'(FLOOR_\w+)\s+([\d.]+)', line)
        if m:
            floor[m.group(1)] = float(m.group(2))
except OSError:
    pass
runs = collections.defaultdict(list)
for line in open(path):
    f = line.rstrip('\n').split('\t')
    if len(f) < 9 or f[6] == 'NA':
        continue
    runs[(f[0], f[1])].append(f)

def cost(lab, w):
    rs = runs.get((lab, w))
    if not rs:
        return None, None
    if w == 'W6':
        return st.median(float(re.search(r'per_conn_kib=([\d.]+)', r[9]).group(1)) for r in rs), None
    per = st.median(float(r[6]) for r in rs)
    rate = st.median(float(r[7]) for r in rs)
    return (per / 1e6 if w in ('W4', 'W5') else per), rate

peers = [p for p in ('nginx', 'haproxy', 'hitch', 'stunnel') if any(k[0] == p for k in runs)]
units = {'W1': 'µs', 'W1m': 'µs', 'W2': 'µs', 'W3': 'µs/req', 'W4': 'CPU-s/GiB', 'W5': 'CPU-s/GiB',
         'W6': 'KiB/conn'}
floors = {'W1': 'FLOOR_FULL_US', 'W1m': 'FLOOR_MTLS_US', 'W2': 'FLOOR_RESUMED_US',
          'W4': 'FLOOR_AES128GCM_S_PER_GIB', 'W5': 'FLOOR_AES128GCM_S_PER_GIB'}
head = ['workload'] + peers + ['tlsgate'] + [f'tlsgate / {p}' for p in peers] + ['crypto floor', 'tlsgate / floor']
print('| ' + ' | '.join(head) + ' |')
print('|' + '---|' * len(head))
for w in ('W1', 'W1m', 'W2', 'W3', 'W4', 'W5', 'W6'):
    tg, tg_rate = cost('tlsgate', w)
    cells = [f'{w} ({units[w]})']
    vals = {}
    for p in peers:
        v, rate = cost(p, w)
        vals[p] = v
        cells.append('-' if v is None else f'{v:.3g}' + (f' ({rate / 1000:.0f}k/s)' if w == 'W3' else ''))
    cells.append('-' if tg is None else f'{tg:.3g}' + (f' ({tg_rate / 1000:.0f}k/s)' if w == 'W3' else ''))
    for p in peers:
        cells.append('-' if tg is None or not vals[p] else f'{tg / vals[p]:.2f}×')
    fl = floor.get(floors.get(w, ''))
    cells.append('-' if fl is None else f'{fl:.3g}')
    cells.append('-' if fl is None or tg is None else f'{tg / fl:.1f}×')
    print('| ' + ' | '.join(cells) + ' |')
