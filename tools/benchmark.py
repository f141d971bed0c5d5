"""The Digits-MLT-Noise benchmark: every method × noise kind × rate × seed, one CSV row per run.

    python tools/benchmark.py                 # the full grid (hours on 2 CPU cores); resumable
    python tools/benchmark.py --quick         # 1 seed, 2 rates, flip only, 1 epoch on digits-small: the CI smoke version
    python tools/benchmark.py & python tools/benchmark.py   # both cores: copies share the work through one claims file
    python tools/benchmark.py --sweep         # sensitivity: alpha_head, beta_tail, t, warmup_epoch (flip 0.5)
    python tools/benchmark.py --factorial     # Stitch-Up with each sampler × loss pairing (why the two branches differ)
    python tools/benchmark.py --report        # from the CSVs: results/benchmark_table.md and the figures (PNG)

Rows already in the output CSV are skipped, so an interrupted grid picks up where it stopped. Each process
claims its next run in `<csv>.claims` (under a lock; claims of dead processes lapse), so any number of copies of
one command run side by side without doing a run twice.
Each run is `stitchup_nb.cli.run_training` (what `stitchup_train` does) in this process.
"""
import argparse, csv, fcntl, json, os, sys, time, warnings
from pathlib import Path

import numpy as np

from stitchup_nb.cli import run_training, train_config
from stitchup_nb.metrics import correction_quality, evaluate
from stitchup_nb.colearn import correction_snapshot
from stitchup_nb.methods import METHODS as TABLE, PRESETS

# the methods come from the package's table (stitchup_nb.methods); the CSV and the tables name them by label
MAIN = ['bce', 'dbfocal', 'bce_stitchup', 'dbfocal_stitchup', 'colearn', 'full']
METHODS = {TABLE[n]['label']: dict(method=n) for n in MAIN}     # label -> stitchup_train options
CLEAN = {'BCE (clean)': dict(method='bce', noise_rate=0.), 'DB-Focal (clean)': dict(method='dbfocal', noise_rate=0.)}
# the sampler × loss pairings the reference does not use: with the main grid's BCE (random) and DB-Focal
# (class-aware) rows they make a 2 × 2 that tells whether Stitch-Up's effect follows the sampler or the loss
FACTORIAL = {TABLE[n]['label']: dict(method=n) for n in
             ('dbfocal_random', 'dbfocal_stitchup_random', 'bce_classaware', 'bce_stitchup_classaware')}
REF = PRESETS['digits']['thresholds']     # the thresholds the full method runs with (the paper's VOC values)
FACTORIAL_PAIRS = {'random sampling, BCE (reference)': ('BCE+Stitch-Up', 'BCE'),
                   'random sampling, DB-Focal': ('DB-Focal+Stitch-Up, random', 'DB-Focal, random'),
                   'class-aware sampling, BCE': ('BCE+Stitch-Up, class-aware', 'BCE, class-aware'),
                   'class-aware sampling, DB-Focal (reference)': ('DB-Focal+Stitch-Up', 'DB-Focal')}
FIELDS = ['method', 'kind', 'rate', 'seed', 'epochs', 'total', 'head', 'medium', 'tail', 'random_total',
          'balanced_total', 'fixed', 'broke', 'prec_noisy', 'prec_corrected', 'rec_noisy', 'rec_corrected', 'seconds', 'extra']


def one_run(method, opts, kind, rate, seed, epochs, extra=None, dataset='digits'):
    "Train one configuration and return its CSV row."
    cfg = train_config(**{'dataset': dataset, 'noise_kind': kind, 'noise_rate': rate, 'noise_seed': seed, 'seed': seed,
                          'epochs': epochs, 'quiet': True, 'work_dir': None, **opts, **(extra or {})})
    t0 = time.time()
    learn, table = run_training(cfg)
    row = dict(method=method, kind=kind, rate=cfg['noise_rate'], seed=seed, epochs=epochs,
               seconds=round(time.time() - t0, 1), extra=json.dumps(extra or {}, sort_keys=True))
    main = 'ensemble' if 'ensemble' in table.index else table.index[0]
    row.update({g: round(table.loc[main, g], 3) for g in ('total', 'head', 'medium', 'tail')})
    for b in ('random', 'balanced'):
        if b in table.index and len(table) > 1: row[f'{b}_total'] = round(table.loc[b, 'total'], 3)
    if len(learn.model.names) == 2 and cfg['noise_rate'] > 0:
        snap = correction_snapshot(learn)
        # corrections a fully trained branch pair would apply, union of both correctors' changes
        q = [correction_quality(snap['clean'], snap['noisy'], c).loc['all'] for c in snap['corrected_by'].values()]
        row.update(fixed=sum(int(x['fixed']) for x in q), broke=sum(int(x['broke']) for x in q),
                   prec_noisy=round(q[0]['precision_noisy'], 2), rec_noisy=round(q[0]['recall_noisy'], 2),
                   prec_corrected=round(np.mean([x['precision_corrected'] for x in q]), 2),
                   rec_corrected=round(np.mean([x['recall_corrected'] for x in q]), 2))
    return row


def t_sweep(seed, epochs, ts=(0., .1, .3, .5, .7, .9, 1.)):
    "Train the full method once (flip 0.5) and evaluate the ensemble at several weights t of the random branch."
    cfg = train_config(noise_kind='flip', noise_rate=.5, noise_seed=seed, seed=seed, epochs=epochs, quiet=True,
                       work_dir=None, **REF)
    learn, _ = run_training(cfg)
    groups = learn.dls.train.ds.groups
    for t in ts:
        table = evaluate(learn, groups, t)
        yield dict(method='sweep t', kind='flip', rate=.5, seed=seed, epochs=epochs, extra=json.dumps({'t': t}),
                   **{g: round(table.loc['ensemble', g], 3) for g in ('total', 'head', 'medium', 'tail')})


def grid(quick, sweep, factorial=False):
    if factorial:   # where the branches' Stitch-Up effects part most first (flip 0.7, cooc 0.5), then flip 0.3
        for kind, rate in (('flip', .7), ('cooc', .5), ('flip', .3)):
            for m, o in FACTORIAL.items(): yield m, o, dict(kind=kind, rate=rate), None
        return
    if sweep:   # one setting changed from the reference (alpha_head .7, beta_tail .1, warmup 0: the main grid's runs)
        base, full = dict(kind='flip', rate=.5), METHODS[TABLE['full']['label']]
        alpha = lambda a: ('sweep alpha_head', full, base, {**REF, 'random_head_alpha': a, 'balance_head_alpha': a})
        beta = lambda b: ('sweep beta_tail', full, base, {**REF, 'random_tail_beta': b, 'balance_tail_beta': b})
        warm = lambda w: ('sweep warmup_epoch', full, base, {**REF, 'warmup_epoch': w})
        # most telling first: correction off in a group, then the far ends, then the rest
        yield from (alpha(1.), beta(0.), alpha(.5), beta(.3), warm(2), alpha(.9), beta(.05), warm(4), alpha(.8), beta(.2))
        return
    kinds, rates = (('flip',), (.3, .7)) if quick else (('flip', 'cooc'), (.5, .9, .3, .7))
    # rate-major, both kinds at each rate: a grid stopped part-way still compares the kinds, ends of the range first
    cells = [(kind, rate) for rate in rates for kind in kinds]
    for i, (kind, rate) in enumerate(cells):
        for m, o in METHODS.items(): yield m, o, dict(kind=kind, rate=rate), None
        if i == 0:   # the clean references early: they anchor every comparison
            for m, o in CLEAN.items(): yield m, o, dict(kind='flip', rate=0.), None


# ---- reading the results (also used by nbs/experiments/benchmark.ipynb) ----
RESULTS = Path(__file__).resolve().parents[1]/'nbs'/'experiments'/'results'
GROUPS = ['total', 'head', 'medium', 'tail']
ORDER = [*METHODS, *CLEAN]


def load(name='benchmark', folder=RESULTS):
    "A results CSV as a DataFrame (empty if it does not exist yet)."
    import pandas as pd
    f = Path(folder)/f'{name}.csv'
    return pd.read_csv(f) if f.exists() else pd.DataFrame(columns=FIELDS)


def summary(df, cols=GROUPS):
    "mean, std and seed count per method × noise kind × rate."
    g = df.groupby(['method', 'kind', 'rate'])
    out = g[list(cols)].agg(['mean', 'std'])
    out[('seeds', '')] = g.size()
    return out


def pm(summ, cols=GROUPS):
    "A summary as 'mean ± std' strings (no spread for a single seed)."
    import pandas as pd
    t = pd.DataFrame(index=summ.index)
    for c in cols:
        t[c] = [f'{a:.1f} ± {b:.1f}' if b == b else f'{a:.1f}' for a, b in zip(summ[(c, 'mean')], summ[(c, 'std')])]
    t['seeds'] = summ[('seeds', '')]
    return t


def _with_clean(res, kind, rate): return res[((res.kind == kind) & (res.rate == rate)) | (res.rate == 0)]


def _by_cell(t):
    "Columns (kind, rate) flip first, rising rate, named 'kind rate'."
    t = t[sorted(t.columns, key=lambda c: (c[0] != 'flip', c[1]))]
    t.columns = [f'{k} {r}' for k, r in t.columns]
    return t


def cells_table(res, col='total', methods=None):
    "`col` at every noisy cell, one column per noise kind and rate: 'mean ± std', or 'mean (n)' below 3 seeds."
    import pandas as pd
    s = summary(res[res.rate > 0], [col])
    txt = [f'{a:.1f} ± {b:.1f}' if n >= 3 else f'{a:.1f} ({n})'
           for a, b, n in zip(s[(col, 'mean')], s[(col, 'std')], s[('seeds', '')])]
    t = pd.Series(txt, s.index).unstack(['kind', 'rate']).fillna('–')
    t = _by_cell(t)
    return t.reindex([m for m in (methods or METHODS) if m in t.index])


def factorial_tables(res, fac, col='total'):
    """Stitch-Up with each sampler × loss pairing at the cells of `fac` (the --factorial CSV), with the main grid's
    reference pairings from `res`: (`col` mAP per method, Stitch-Up's paired effect on it per pairing)."""
    import pandas as pd
    single = ['BCE', 'BCE+Stitch-Up', 'DB-Focal', 'DB-Focal+Stitch-Up']
    cells = set(zip(fac.kind, fac.rate))
    both = pd.concat([res[res.method.isin(single)], fac])
    both = both[[(k, r) in cells for k, r in zip(both.kind, both.rate)]]
    return (cells_table(both, col, methods=single[:2] + [*FACTORIAL] + single[2:]),     # random sampling first
            paired_table(both, col=col, pairs=FACTORIAL_PAIRS))


def paired_table(res, base='BCE', col='total', pairs=None):
    """Per noisy cell, each method's `col` minus `base`'s on the same seed (the same noise draw and training seed):
    'mean difference (seeds ahead/seeds compared)'. Seeds move mAP by several points together for every method,
    so a paired difference resolves far smaller gaps than the spread of either. `pairs` ({row: (method, against)})
    compares other pairs."""
    import pandas as pd
    d = res[res.rate > 0].pivot_table(index=['kind', 'rate', 'seed'], columns='method', values=col)
    pairs = pairs or {m: (m, base) for m in METHODS if m != base}
    out = {}
    for row, (m, b) in pairs.items():
        if m not in d or b not in d: continue
        g = (d[m] - d[b]).dropna().groupby(level=['kind', 'rate'])
        out[row] = {c: f'{v.mean():+.1f} ({(v > 0).sum()}/{len(v)})' for c, v in g}
    t = pd.DataFrame(out).T
    t = _by_cell(t)
    return t.fillna('–')


def cell_table(res, kind='flip', rate=.5, methods=ORDER):
    "Mean ± std per group of `methods` (and the clean references) at one noise cell."
    t = pm(summary(_with_clean(res, kind, rate))).reset_index(level=['kind', 'rate'], drop=True)
    return t.reindex([m for m in methods if m in t.index] + [m for m in CLEAN if m in t.index and m not in methods])


def group_bars(res, kind='flip', rate=.5):
    "Figure: per-group mAP of every method at one noise cell (error bars: std over seeds)."
    import matplotlib.pyplot as plt
    s = summary(_with_clean(res, kind, rate)).reset_index(level=['kind', 'rate'], drop=True)
    s = s.reindex([m for m in ORDER if m in s.index])
    fig, ax = plt.subplots(figsize=(11, 3.6))
    w = .8 / max(len(s), 1)
    for i, m in enumerate(s.index):
        ax.bar(np.arange(4) + i * w, [s.loc[m, (g, 'mean')] for g in GROUPS], w,
               yerr=[np.nan_to_num(s.loc[m, (g, 'std')]) for g in GROUPS], label=m, capsize=2)
    ax.set_xticks(np.arange(4) + .4 - w / 2, GROUPS); ax.set_ylabel('mAP (%)')
    ax.set_title(f'Digits-MLT, {kind} noise {rate}: mAP per class group (mean ± std over seeds)')
    ax.legend(ncol=4, fontsize=8, loc='upper center', bbox_to_anchor=(.5, -.1))
    fig.tight_layout()
    return fig


def rate_curves(res, col='total'):
    "Figure: `col` mAP against the noise rate, a line per method, a panel per noise kind; clean references dashed."
    import matplotlib.pyplot as plt
    kinds = [k for k in ('flip', 'cooc') if (res.kind == k).any()] or ['flip']
    s, clean = summary(res[res.rate > 0]).reset_index(), summary(res[res.rate == 0]).reset_index()
    fig, axs = plt.subplots(1, len(kinds), figsize=(6 * len(kinds), 3.6), sharey=True, squeeze=False)
    for ax, k in zip(axs[0], kinds):
        for m in METHODS:
            d = s[(s.kind == k) & (s.method == m)].sort_values('rate')
            if len(d): ax.errorbar(d.rate, d[(col, 'mean')], yerr=np.nan_to_num(d[(col, 'std')]), marker='o', capsize=2, label=m)
        for _, r in clean.iterrows():
            ax.axhline(r[(col, 'mean')], ls='--', lw=1, color='grey'); ax.text(ax.get_xlim()[0], r[(col, 'mean')], f" {r[('method', '')]}", fontsize=7, color='grey', va='bottom')
        ax.set_title(f'{k} noise'); ax.set_xlabel('noise rate'); ax.set_ylabel(f'{col} mAP (%)')
    axs[0, -1].legend(fontsize=8)
    fig.tight_layout()
    return fig


REF_VALUE = {'sweep alpha_head': REF['random_head_alpha'], 'sweep beta_tail': REF['random_tail_beta'],
             'sweep warmup_epoch': train_config()['warmup_epoch']}
SWEEPS = {'sweep alpha_head': 'random_head_alpha', 'sweep beta_tail': 'random_tail_beta',
          'sweep warmup_epoch': 'warmup_epoch', 'sweep t': 't'}


def sweep_plot(sw, res=None):
    "Figure: per-group mAP against each swept setting (flip 0.5), averaged over seeds; `res` adds the reference runs."
    import matplotlib.pyplot as plt
    import pandas as pd
    names = [n for n in SWEEPS if (sw.method == n).any()]
    if res is not None:      # the main grid's full-method runs are the sweeps' reference point, for the seeds swept
        ref = res[(res.method == 'Stitch-Up+Co-Learning') & (res.kind == 'flip') & (res.rate == .5) & res.seed.isin(sw.seed)]
        sw = pd.concat([sw, *[ref.assign(method=n, extra=json.dumps({SWEEPS[n]: REF_VALUE[n]})) for n in names if n != 'sweep t']])
    fig, axs = plt.subplots(1, max(len(names), 1), figsize=(4 * max(len(names), 1), 3.2), squeeze=False)
    for ax, n in zip(axs[0], names):
        d = sw[sw.method == n].copy()
        d['x'] = [json.loads(e)[SWEEPS[n]] for e in d.extra]
        d = d.groupby('x')[GROUPS].mean()
        for g in GROUPS: ax.plot(d.index, d[g], marker='o', label=g)
        ax.set_title(n.replace('sweep ', '')); ax.set_ylabel('mAP (%)')
    axs[0, 0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def markdown(t):
    "A small DataFrame as a Markdown table."
    cols = [t.index.name or '', *map(str, t.columns)]
    rows = [f'| {i} | ' + ' | '.join(map(str, r)) + ' |' for i, r in zip(t.index, t.values)]
    return '\n'.join([f'| {" | ".join(cols)} |', '|' + '---|' * len(cols), *rows])


def report(folder=RESULTS):
    "Write results/benchmark_table.md and the figures from the CSVs."
    import matplotlib; matplotlib.use('Agg')
    res, sw, fac = load(folder=folder), load('benchmark_sweep', folder), load('benchmark_factorial', folder)
    md = [f'Digits-MLT, flip noise 0.5, mean ± std over seeds ({len(res)} runs in benchmark.csv):', '',
          markdown(cell_table(res).rename_axis('method'))]
    if len(res[res.rate > 0]):
        md += ['', 'Total mAP at every noise cell (mean ± std over 3 seeds; "(1)": one seed so far):', '',
               markdown(cells_table(res).rename_axis('method')),
               '', 'Total mAP minus BCE\'s on the same seed, mean (seeds ahead / seeds compared):', '',
               markdown(paired_table(res).rename_axis('method'))]
    if len(fac):
        levels, effect = factorial_tables(res, fac)
        md += ['', 'Each sampler with each loss (`--factorial`), total mAP:', '', markdown(levels.rename_axis('method')),
               '', "Stitch-Up's effect per sampler × loss pairing (with minus without, same seed):", '',
               markdown(effect.rename_axis('pairing'))]
    (Path(folder)/'benchmark_table.md').write_text('\n'.join(md) + '\n')
    figs = {'benchmark_groups.png': group_bars(res), 'benchmark_rates.png': rate_curves(res)}
    if len(sw): figs['benchmark_sweep.png'] = sweep_plot(sw, res)
    for name, fig in figs.items(): fig.savefig(Path(folder)/name, dpi=90, bbox_inches='tight')
    print('\n'.join(md)); print('figures:', ', '.join(figs))


def append_rows(out, rows):
    "Append `rows` to the CSV `out` (header on a new file), under a lock: shards append to one CSV."
    with open(out, 'a', newline='') as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        w = csv.DictWriter(f, FIELDS)
        if f.tell() == 0: w.writeheader()
        w.writerows(rows)


def _alive(pid):
    try: os.kill(pid, 0)
    except ProcessLookupError: return False
    except PermissionError: pass
    return True


def claim(out, keys, row_key=None):
    """Under a lock: the index of the first of `keys` neither in the CSV `out` nor claimed by a live process, claimed
    now for this one (None when nothing is left). `row_key(d)` makes a key from a CSV row's (method, kind, rate, seed,
    extra)."""
    row_key = row_key or list
    with open(f'{out}.claims', 'a+') as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.seek(0)
        taken = [json.loads(l) for l in f if l.strip()]
        taken = [k for pid, k in taken if pid != os.getpid() and _alive(pid)]
        if Path(out).exists():
            with open(out) as c:
                taken += [row_key([r['method'], r['kind'], float(r['rate']), int(r['seed']), r['extra']])
                          for r in csv.DictReader(c)]
        i = next((i for i, k in enumerate(keys) if k not in taken), None)
        if i is not None: f.write(json.dumps([os.getpid(), keys[i]]) + '\n'); f.flush()
        return i


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--quick', action='store_true')
    ap.add_argument('--report', action='store_true', help='only write the table and figures from the CSVs')
    ap.add_argument('--sweep', action='store_true')
    ap.add_argument('--factorial', action='store_true', help='Stitch-Up with each sampler × loss pairing')
    ap.add_argument('--seeds', default=None, help='comma list (default: 0,1,2; quick: 0)')
    ap.add_argument('--epochs', type=int, default=None, help='default: 8; quick: 1')
    ap.add_argument('--out', default=None, help='CSV (default: nbs/experiments/results/benchmark[_quick|_sweep|_factorial].csv)')
    a = ap.parse_args()
    if a.report: return report()
    warnings.filterwarnings('ignore')
    seeds = [int(s) for s in (a.seeds or ('0' if a.quick else '0,1,2')).split(',')]
    epochs = a.epochs or (1 if a.quick else 8)
    name = 'benchmark' + ('_quick' if a.quick else '_sweep' if a.sweep else '_factorial' if a.factorial else '')
    out = Path(a.out or Path(__file__).resolve().parents[1]/'nbs'/'experiments'/'results'/f'{name}.csv')
    out.parent.mkdir(parents=True, exist_ok=True)
    runs = [(m, o, s, e, seed) for seed in seeds for m, o, s, e in grid(a.quick, a.sweep, a.factorial)]
    cells = list(dict.fromkeys((s['kind'], s['rate']) for _, _, s, _, _ in runs))
    first = cells[0]
    # order: every seed of the first cell (flip 0.5) and the clean references, then seed 0 of every cell, then the
    # other seeds cell by cell (a stopped grid leaves whole cells at 3 seeds): the first cell's rate, then lowest first
    later = sorted(cells, key=lambda c: (c[1] != first[1], c[1]))
    runs.sort(key=lambda r: (0, 0, r[4]) if (r[2]['kind'], r[2]['rate']) == first or r[1].get('noise_rate') == 0.
              else (1, 0, 0) if r[4] == 0 else (2, later.index((r[2]['kind'], r[2]['rate'])), r[4]))
    key = lambda r: [r[0], r[2]['kind'], float(r[1].get('noise_rate', r[2]['rate'])), r[4],
                     json.dumps(r[3] or {}, sort_keys=True)]
    # the ensemble weight t first (one training, evaluated at every t), by the copy that claims it
    if a.sweep:
        for seed in seeds:
            if claim(out, [['sweep t', seed]], lambda d: d[:1] + d[3:4]) is None: continue
            rows = list(t_sweep(seed, epochs))
            append_rows(out, rows)
            for r in rows: print(f"sweep t={json.loads(r['extra'])['t']:.1f} seed {seed}: total {r['total']:.2f} "
                                 f"head {r['head']:.2f} tail {r['tail']:.2f}", flush=True)
    while (i := claim(out, [key(r) for r in runs])) is not None:
        m, o, s, extra, seed = runs[i]
        row = one_run(m, o, s['kind'], s['rate'], seed, epochs, extra, 'digits-small' if a.quick else 'digits')
        append_rows(out, [row])
        print(f"[{i+1}/{len(runs)}] {m:24s} {s['kind']} {row['rate']:.1f} seed {seed}: total {row['total']:.2f} "
              f"head {row['head']:.2f} medium {row['medium']:.2f} tail {row['tail']:.2f} ({row['seconds']:.0f} s)", flush=True)
    print(f'results in {out}')


if __name__ == '__main__': main()
