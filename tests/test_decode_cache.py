"""Parallel decoding and the decoded-image cache: the same uint8 pixels in the same order whether
decoded one after another, on threads, or read back from the cache; a changed file invalidates its entry; two
processes filling one entry at once both succeed and agree."""
import json, os, subprocess, sys, textwrap, time

import numpy as np
import pytest
from PIL import Image

from stitchup_nb import images
from stitchup_nb.images import decode_images, decode_key, decoded_images, image_cache_dir, load_image
from stitchup_nb.readers import voc_set
from stitchup_nb.fixtures import make_voc, write_jpeg


@pytest.fixture
def files(tmp_path):
    "JPEGs of several shapes, plus a greyscale PNG and a CMYK JPEG (other decode paths)."
    fs = [write_jpeg(tmp_path/'img'/f'{i}.jpg', seed=i, size=(50 + 7 * i, 37 + 3 * i)) for i in range(10)]
    Image.fromarray(np.arange(40 * 30, dtype=np.uint8).reshape(30, 40)).save(tmp_path/'img'/'grey.png')
    Image.new('CMYK', (45, 33), (10, 200, 30, 5)).save(tmp_path/'img'/'cmyk.jpg')
    return fs + [tmp_path/'img'/'grey.png', tmp_path/'img'/'cmyk.jpg']


def reference(files, size):
    "Today's decode: one file after another with `load_image`."
    return np.stack([load_image(f, size) for f in files])


def test_parallel_and_cached_pixels_are_exactly_the_sequential_ones(files, tmp_path):
    ref = reference(files, 24)
    for workers in (1, 2, 5):
        arr, bad = decode_images(files, 24, workers=workers)
        assert bad == [] and arr.dtype == np.uint8 and np.array_equal(arr, ref)
    cold, _ = decoded_images(files, 24, cache=tmp_path/'c')
    warm, bad = decoded_images(files, 24, cache=tmp_path/'c')
    assert np.array_equal(cold, ref) and np.array_equal(warm, ref) and bad == []
    assert isinstance(warm, np.memmap) and warm.dtype == np.uint8 and not warm.flags.writeable
    assert sorted(p.suffix for p in (tmp_path/'c').iterdir()) == ['.json', '.npy']


def test_readers_give_the_same_pixels_with_and_without_the_cache(tmp_path):
    fx = make_voc(tmp_path, n2012=9, n2007=4)
    root = fx['root']/'VOC2012'
    plain = voc_set(root, size=32)
    first = voc_set(root, size=32, cache=tmp_path/'c')
    second = voc_set(root, size=32, cache=tmp_path/'c')
    for s in (first, second): np.testing.assert_array_equal(np.asarray(s.items), plain.items)
    assert isinstance(second.items, np.memmap)
    assert np.array_equal(plain.items, reference([root/'JPEGImages'/f'{i}.jpg' for i in plain.ids], 32))


def count_decodes(monkeypatch):
    calls = []
    real = images.load_image
    monkeypatch.setattr(images, 'load_image', lambda p, size=None: calls.append(p) or real(p, size))
    return calls


def test_a_second_load_decodes_nothing_and_a_changed_file_invalidates(files, tmp_path, monkeypatch):
    calls = count_decodes(monkeypatch)
    decoded_images(files, 16, cache=tmp_path/'c'); assert len(calls) == len(files)
    decoded_images(files, 16, cache=tmp_path/'c'); assert len(calls) == len(files)      # read from the cache
    key = decode_key(files, 16)
    st = os.stat(files[3])
    os.utime(files[3], ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))                      # mtime only
    assert decode_key(files, 16) != key
    decoded_images(files, 16, cache=tmp_path/'c'); assert len(calls) == 2 * len(files)
    # new content, same mtime, other size: new key, and the new pixels (never the stale ones)
    st = os.stat(files[5])
    write_jpeg(files[5], seed=99, size=(61, 44)); os.utime(files[5], ns=(st.st_atime_ns, st.st_mtime_ns))
    assert os.stat(files[5]).st_size != st.st_size
    arr, _ = decoded_images(files, 16, cache=tmp_path/'c')
    assert np.array_equal(arr, reference(files, 16))
    assert decode_key(files, 16) != decode_key(files, 17) and decode_key(files, 16) != decode_key(files[::-1], 16)


def test_unreadable_images_are_remembered_and_still_stop_an_error_run(files, tmp_path):
    broken = tmp_path/'img'/'broken.jpg'; broken.write_bytes(b'\xff\xd8not a jpeg')
    fs = files[:3] + [broken] + files[3:]
    with pytest.raises(OSError, match='broken.jpg'): decode_images(fs, 16, workers=3)
    arr, bad = decoded_images(fs, 16, on_bad='skip', cache=tmp_path/'c')
    arr2, bad2 = decoded_images(fs, 16, on_bad='skip', cache=tmp_path/'c')
    assert bad == bad2 == [3] and isinstance(arr2, np.memmap)
    keep = [0, 1, 2, *range(4, len(fs))]
    assert np.array_equal(arr[keep], reference(files, 16)) and np.array_equal(arr2[keep], arr[keep])
    with pytest.raises(OSError, match='broken.jpg'): decoded_images(fs, 16, cache=tmp_path/'c')


def test_the_first_bad_image_in_order_is_the_one_named(tmp_path):
    fs = [write_jpeg(tmp_path/f'{i}.jpg', seed=i) for i in range(8)]
    for i in (2, 6): fs[i].write_bytes(b'junk')
    for _ in range(5):
        with pytest.raises(OSError, match=r'2\.jpg'): decode_images(fs, 8, workers=4)


def test_stale_temporary_files_are_cleaned_when_writing(files, tmp_path):
    c = tmp_path/'c'; c.mkdir()
    old, fresh, other = c/'abc.npy.0123456789ab.tmp', c/'abd.npy.0123456789ac.tmp', c/'notes.tmp'
    for p in (old, fresh, other): p.write_bytes(b'x')
    two_hours_ago = time.time() - 7200
    for p in (old, other): os.utime(p, (two_hours_ago, two_hours_ago))
    decoded_images(files, 8, cache=c)
    assert not old.exists() and fresh.exists() and other.exists()      # only the kit's own, only old ones


def test_entries_of_deleted_images_are_removed_when_writing(tmp_path):
    gone = [write_jpeg(tmp_path/'gone'/f'{i}.jpg', seed=i) for i in range(3)]
    decoded_images(gone, 8, cache=tmp_path/'c')
    for f in gone: f.unlink()
    kept = [write_jpeg(tmp_path/'kept'/f'{i}.jpg', seed=i) for i in range(3)]
    decoded_images(kept, 8, cache=tmp_path/'c')
    assert sorted(p.name for p in (tmp_path/'c').iterdir()) == sorted(f'{decode_key(kept, 8)}{e}' for e in ('.json', '.npy'))


def test_the_cache_folder_is_the_kits(tmp_path, monkeypatch):
    from stitchup_nb.digits import cache_dir
    monkeypatch.delenv('STITCHUP_CACHE', raising=False)
    assert image_cache_dir() == cache_dir()/'decoded'
    monkeypatch.setenv('STITCHUP_CACHE', str(tmp_path/'k'))
    assert image_cache_dir() == cache_dir()/'decoded' == tmp_path/'k'/'decoded'


FILL = textwrap.dedent('''
    import sys, time, numpy as np
    from pathlib import Path
    from stitchup_nb import images
    real = images.load_image
    images.load_image = lambda p, size=None: (time.sleep(0.02), real(p, size))[1]     # long enough to overlap
    files = sorted(Path(sys.argv[1]).glob('*.jpg'))
    Path(sys.argv[3]).with_suffix('.ready').touch()
    while not Path(sys.argv[4]).exists(): time.sleep(0.01)                          # start together
    arr, bad = images.decoded_images(files, 20, workers=2, cache=Path(sys.argv[2]))
    np.save(sys.argv[3], np.asarray(arr))
''')


def test_two_processes_filling_the_cache_at_once_both_succeed_and_agree(tmp_path):
    fs = [write_jpeg(tmp_path/'img'/f'{i:02d}.jpg', seed=i, size=(64, 48)) for i in range(40)]
    go = tmp_path/'go'
    procs = [subprocess.Popen([sys.executable, '-c', FILL, str(tmp_path/'img'), str(tmp_path/'c'), str(tmp_path/f'out{k}.npy'), str(go)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for k in range(2)]
    deadline = time.time() + 60
    while not all((tmp_path/f'out{k}.ready').exists() for k in range(2)) and time.time() < deadline: time.sleep(0.01)
    go.touch()
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err[-2000:]
    ref = reference(fs, 20)
    for k in range(2): assert np.array_equal(np.load(tmp_path/f'out{k}.npy'), ref)
    assert sorted(p.suffix for p in (tmp_path/'c').iterdir()) == ['.json', '.npy']          # one entry, no temporary files left
    assert np.array_equal(decoded_images(fs, 20, cache=tmp_path/'c')[0], ref)


def test_the_decode_benchmark_runs_and_checks_pixels(tmp_path, capsys):
    "tools/bench_decode.py on a tiny set: it runs, every path gave the old pixels, and it writes its JSON (no timing asserted)."
    from tests.conftest import load_tool
    bench = load_tool('bench_decode')
    out = bench.main(['--n', '6', '--size', '64x48', '--img', '16', '--no-processes', '--out', str(tmp_path/'b.json')])
    assert out['pixels_identical'] and out['set']['n'] == 6 and (tmp_path/'b.json').is_file()
    assert out['command'] == 'python tools/bench_decode.py --n 6 --size 64x48 --img 16 --no-processes --out ' + str(tmp_path/'b.json')
    # its figures are evidence: an existing --out (the committed file, by default) is replaced only with --overwrite;
    # every option is checked before a JPEG is written
    for argv, said in ((['--out', str(tmp_path/'b.json')], 'exists: pass --overwrite'), (['--size', '64'], '--size must be WIDTHxHEIGHT'),
                       (['--n', '0', '--out', str(tmp_path/'n.json')], '--n must be >= 1'), (['--out', str(tmp_path)], 'is a folder'),
                       (['--size', '0x375', '--out', str(tmp_path/'z.json')], '--size must be WIDTHxHEIGHT of at least 1 pixel each'),   # a traceback
                       (['--img', '100000', '--out', str(tmp_path/'m.json')], '--n 400 --img 100000: a decoded set takes 11,175.9 GB')):  # it tried
        with pytest.raises(SystemExit) as e: bench.options(argv)
        assert e.value.code == 2 and said in capsys.readouterr().err, argv


def test_a_folder_whose_name_is_not_utf8_is_cached(tmp_path):
    "A data folder named in another encoding (a disk written on another system: b'lat\\xe9n') decodes and caches; it raised UnicodeEncodeError, naming no file."
    root = tmp_path/os.fsdecode(b'lat\xe9n')
    try: root.mkdir()
    except (OSError, UnicodeError): pytest.skip('this file system refuses names that are not UTF-8')
    fx = make_voc(root, n2012=5, n2007=4)
    first = voc_set(fx['root']/'VOC2012', size=16, cache=tmp_path/'c')
    second = voc_set(fx['root']/'VOC2012', size=16, cache=tmp_path/'c')
    assert isinstance(second.items, np.memmap) and np.array_equal(np.asarray(second.items), first.items)
    assert decode_key([tmp_path/'a.jpg'], 16) != decode_key([root/'a.jpg'], 16)


def test_a_photograph_taken_sideways_is_decoded_upright(tmp_path):
    "EXIF orientation 8 (turn 90° counter-clockwise), as a camera held on its side writes: decoded upright, as the reference's "
    "cv2.imread and any viewer show it, also once cached; it was decoded lying on its side."
    from PIL import ImageOps
    fx = make_voc(tmp_path, n2012=4, n2007=4)
    root = fx['root']/'VOC2012'
    p = root/'JPEGImages'/f"{fx['VOC2012']['ids'][2]}.jpg"
    exif = Image.Exif(); exif[0x0112] = 8
    Image.open(p).save(p, exif=exif.tobytes(), quality=95)                # stored 40 wide, 32 high
    with Image.open(p) as im: upright = np.asarray(ImageOps.exif_transpose(im).convert('RGB'))
    assert upright.shape == (40, 32, 3) and np.array_equal(load_image(p), upright)
    s = voc_set(root, size=None)
    assert s.image(2).shape == (40, 32, 3)
    cached = [voc_set(root, size=16, cache=tmp_path/'c') for _ in range(2)]
    with Image.open(p) as im: want = np.asarray(ImageOps.exif_transpose(im).convert('RGB').resize((16, 16), Image.BILINEAR))
    for c in cached:                  # decoded at a reduced JPEG scale first: near the upright picture, exactly load_image's
        assert np.abs(np.asarray(c.items[2], int) - want).mean() < 8 and np.array_equal(c.items[2], load_image(p, 16))


def test_float_and_signed_greyscale_images_keep_their_grey_levels(tmp_path):
    "A 32-bit float image (0..1) was decoded black, Pillow clipping it to 0/1 of 255; negative 32-bit integers wrapped round."
    Image.fromarray(np.array([[-.5, 0, .25, 1]], np.float32)).save(tmp_path/'f.tif')
    Image.fromarray(np.array([[-1000, 0, 500, 1000]], np.int32)).save(tmp_path/'i.tif')
    assert load_image(tmp_path/'f.tif')[0, :, 0].tolist() == [0, 0, 63, 255]
    assert load_image(tmp_path/'i.tif')[0, :, 0].tolist() == [0, 0, 127, 255]
    assert decoded_images([tmp_path/'f.tif'], 4, cache=tmp_path/'c')[0].max() == 255


def test_a_full_disk_is_named_with_the_room_needed_and_where_else_to_cache(files, tmp_path, monkeypatch):
    "A cache disk without room for the set: decoded all the same, and the warning gives the room needed and free and the way "
    "to keep the set elsewhere (it gave numpy's '245760 requested and 65408 written')."
    import shutil
    from collections import namedtuple
    monkeypatch.setenv('STITCHUP_CACHE', str(tmp_path/'k'))
    def full(path, write): raise OSError(28, 'No space left on device')
    monkeypatch.setattr(images, 'atomic_write', full)
    monkeypatch.setattr(shutil, 'disk_usage', lambda p: namedtuple('usage', 'total used free')(10**9, 10**9 - 2**20, 2**20))
    with pytest.warns(UserWarning) as w: arr, _ = decoded_images(files, 256)
    msg = str(w[-1].message)
    assert np.array_equal(arr, reference(files, 256))
    assert f"could not keep the decoded images in {tmp_path/'k'/'decoded'}" in msg and 'No space left on device' in msg
    assert 'the set takes 2.2 MB and that disk has 1.0 MB free' in msg and 'set STITCHUP_CACHE to a folder you can write' in msg


def test_a_damaged_exif_neither_stops_nor_unturns_the_image(tmp_path):
    "A JPEG whose EXIF is damaged around a valid orientation (here the camera's make filed under the image-width tag) decodes, "
    "turned upright; Pillow's exif_transpose raised struct.error rewriting it, a traceback the console scripts do not report."
    side = np.zeros((30, 40, 3), np.uint8); side[:10, :20] = 255
    exif = Image.Exif(); exif[0x0112], exif[0x010f] = 6, 'Canon'
    raw = exif.tobytes()
    assert raw.count(b'\x01\x0f\x00\x02') == 1
    Image.fromarray(side).save(tmp_path/'d.jpg', exif=raw.replace(b'\x01\x0f\x00\x02', b'\x01\x00\x00\x02'), quality=95)
    up = load_image(tmp_path/'d.jpg')
    assert up.shape == (40, 30, 3) and up[:20, -10:].mean() > 200 and up[:20, :10].mean() < 50
    assert decode_images([tmp_path/'d.jpg'], 8)[1] == []


def test_an_entry_an_earlier_decoder_wrote_gives_way_to_the_new_one(tmp_path, monkeypatch):
    "A kit whose load_image changed pixels (_DECODE_VERSION bumped) decodes a set again; the old entry (about 0.9 GB for "
    "VOC-MLT at 224) was kept for good, as its recorded file list holds the old version. Another set's entry stays."
    imgs = [write_jpeg(tmp_path/'img'/f'{i}.jpg', seed=i) for i in range(4)]
    monkeypatch.setattr(images, '_DECODE_VERSION', images._DECODE_VERSION - 1)
    decoded_images(imgs, 8, cache=tmp_path/'c'); decoded_images(imgs[:2], 8, cache=tmp_path/'c')
    monkeypatch.undo()
    decoded_images(imgs, 8, cache=tmp_path/'c')
    got = sorted(p.name for p in (tmp_path/'c').iterdir())
    want = [decode_key(imgs, 8), decode_key(imgs[:2], 8, version=images._DECODE_VERSION - 1)]
    assert got == sorted(f'{k}{e}' for k in want for e in ('.json', '.npy')), got


def test_the_same_files_through_a_link_or_a_relative_path_are_one_entry(files, tmp_path, monkeypatch):
    "Keyed by the real paths: a linked folder (data/voc -> a scratch disk) and a relative path reach the one entry, decoded once."
    calls = count_decodes(monkeypatch)
    (tmp_path/'link').symlink_to(tmp_path/'img', target_is_directory=True)
    real, linked = files[:4], [tmp_path/'link'/f.name for f in files[:4]]
    decoded_images(real, 12, cache=tmp_path/'c')
    warm, _ = decoded_images(linked, 12, cache=tmp_path/'c')
    monkeypatch.chdir(tmp_path/'img')
    again, _ = decoded_images([f.name for f in real], 12, cache=tmp_path/'c')
    assert len(calls) == 4 and isinstance(warm, np.memmap) and isinstance(again, np.memmap)
    assert np.array_equal(warm, reference(real, 12)) and len(list((tmp_path/'c').glob('*.npy'))) == 1
    # a link pointed at another file: another real path, another key (never the first file's pixels)
    (tmp_path/'one.jpg').symlink_to(files[0]); key = decode_key([tmp_path/'one.jpg'], 12)
    (tmp_path/'one.jpg').unlink(); (tmp_path/'one.jpg').symlink_to(files[1])
    assert decode_key([tmp_path/'one.jpg'], 12) != key
    assert np.array_equal(decoded_images([tmp_path/'one.jpg'], 12, cache=tmp_path/'c')[0], reference(files[1:2], 12))


def test_an_entry_keyed_by_linked_paths_gives_way_to_the_real_paths_one(files, tmp_path):
    "What an earlier kit wrote for the linked paths as given (`resolve=False`) is removed when the real paths' entry is written."
    (tmp_path/'link').symlink_to(tmp_path/'img', target_is_directory=True)
    linked, c = [tmp_path/'link'/f.name for f in files[:3]], tmp_path/'c'
    old = decode_key(linked, 12, resolve=False)
    c.mkdir(); np.save(c/f'{old}.npy', reference(files[:3], 12))
    (c/f'{old}.json').write_text(json.dumps({'n': 3, 'size': 12, 'bad': [], 'name': '', 'first': str(linked[0]),
                                             'files': decode_key(linked, 12, stat=False, resolve=False)}))
    decoded_images(linked, 12, cache=c)
    assert sorted(p.name for p in c.iterdir()) == sorted(f'{decode_key(files[:3], 12)}{e}' for e in ('.json', '.npy'))


def test_a_disk_without_room_to_spare_is_said_before_decoding_and_left_unfilled(files, tmp_path, monkeypatch):
    "A disk with room for the set but not for as much again besides: warned before the decoding, and nothing written (the "
    "cache wrote the set there, leaving what else writes on that disk nothing; a disk short of room was said only after "
    "minutes of decoding, when the write failed)."
    import shutil
    from collections import namedtuple
    nbytes = len(files) * 64 * 64 * 3
    free = nbytes + nbytes // 2       # room for the set, not for as much again
    monkeypatch.setattr(shutil, 'disk_usage', lambda p: namedtuple('usage', 'total used free')(10**12, 10**12 - free, free))
    said, decode = [], images.decode_images
    def watched(*a, **k): said.append('decoding'); return decode(*a, **k)
    monkeypatch.setattr(images, 'decode_images', watched)
    monkeypatch.setattr(images.warnings, 'warn', lambda msg, *a, **k: said.append(str(msg)))
    arr, bad = decoded_images(files, 64, cache=tmp_path/'c')
    assert np.array_equal(arr, reference(files, 64)) and bad == []
    assert len(said) == 2 and said[1] == 'decoding', said
    assert f"could not keep the decoded images in {tmp_path/'c'}" in said[0] and f'a cache leaves {nbytes / 2**20:,.1f} MB free after' in said[0]
    assert f"pass cache= a folder other than {tmp_path/'c'}, one you can write" in said[0], said[0]    # the folder the caller chose: it said only 'pass cache='
    assert not (tmp_path/'c').exists() or not list((tmp_path/'c').iterdir())


def test_the_run_that_fills_the_cache_gets_a_read_only_array_as_the_next_does(files, tmp_path):
    "Writing into the decoded set worked on the run that filled the cache and failed on the next (a read-only memory map)."
    for _ in range(2):
        arr, _ = decoded_images(files, 16, cache=tmp_path/'c')
        with pytest.raises(ValueError, match='read-only'): arr[0, 0, 0, 0] = 1


def test_the_file_a_killed_fill_left_goes_where_every_later_run_reads_its_entry(files, tmp_path):
    "A fill killed (SIGKILL) while writing leaves its temporary file; the cleaning ran only on a write, so where the next run "
    "filled the entry and every later one read it, that file (up to a whole set's size) stayed for good."
    c = tmp_path/'c'
    child = textwrap.dedent(f'''
        import sys, time
        from stitchup_nb import images
        def stuck(f, a): f.write(b'x' * 1000); f.flush(); print('writing', flush=True); time.sleep(120)
        images.np.save = stuck
        images.decoded_images({[str(f) for f in files]!r}, 8, cache={str(c)!r})''')
    p = subprocess.Popen([sys.executable, '-c', child], stdout=subprocess.PIPE, text=True)
    try: assert p.stdout.readline().strip() == 'writing'
    finally: p.kill(); p.wait()
    left = list(c.glob('*.npy.*.tmp'))
    assert len(left) == 1
    decoded_images(files, 8, cache=c)                                   # the next run fills the entry: the file is new yet
    hour_ago = time.time() - 3700
    os.utime(left[0], (hour_ago, hour_ago))
    assert isinstance(decoded_images(files, 8, cache=c)[0], np.memmap)  # a later run reads the entry
    assert not left[0].exists() and sorted(q.suffix for q in c.iterdir()) == ['.json', '.npy']


def test_a_read_keeps_the_entry_of_a_set_whose_disk_is_away(files, tmp_path):
    "Reading one set's entry removes stale temporary files only: another set's entry, its images on a disk not mounted now, stays."
    c, away = tmp_path/'c', [write_jpeg(tmp_path/'usb'/f'{i}.jpg', seed=i) for i in range(2)]
    decoded_images(away, 8, cache=c); decoded_images(files, 8, cache=c)
    (tmp_path/'usb').rename(tmp_path/'usb-unmounted')
    assert isinstance(decoded_images(files, 8, cache=c)[0], np.memmap)
    assert len(list(c.glob('*.npy'))) == 2


def test_a_small_set_is_kept_on_a_disk_with_less_than_the_spare_free(files, tmp_path, monkeypatch):
    "A set of a few KB (a test's fixture, a notebook's example) on a disk with 100 MB free: kept without a word, as before "
    "CACHE_SPARE. A flat 512 MB spare refused every set on a nearly full CI disk: a warning each load, decoded again each run."
    import shutil, warnings
    from collections import namedtuple
    monkeypatch.setattr(shutil, 'disk_usage', lambda p: namedtuple('usage', 'total used free')(10**12, 10**12 - 10**8, 10**8))
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        decoded_images(files, 16, cache=tmp_path/'c')
        assert isinstance(decoded_images(files, 16, cache=tmp_path/'c')[0], np.memmap)
    assert images.cache_room(tmp_path, 10**8 // 2) is None and 'that disk has 95.4 MB free' in images.cache_room(tmp_path, 10**8 // 2 + 1)
    assert 'a cache leaves 512.0 MB free after' in images.cache_room(tmp_path, 2 * images.CACHE_SPARE)   # a large set: the spare


def test_a_read_leaves_the_temporary_file_of_a_fill_still_writing(files, tmp_path):
    "A fill whose write has taken over an hour (a slow disk, a machine asleep mid-write) holds its temporary file: a read of "
    "another entry removed it as stale (older than an hour), and the fill, at its end, could not keep the set."
    c = tmp_path/'c'
    decoded_images(files[:2], 8, cache=c)                               # an entry the later run reads
    child = textwrap.dedent(f'''
        import sys, time
        from stitchup_nb import images
        def stuck(f, a): f.write(b'x' * 1000); f.flush(); print('writing', flush=True); time.sleep(120)
        images.np.save = stuck
        images.decoded_images({[str(f) for f in files[2:]]!r}, 8, cache={str(c)!r})''')
    p = subprocess.Popen([sys.executable, '-c', child], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == 'writing'
        live, = c.glob('*.npy.*.tmp')
        hour_ago = time.time() - 3700
        os.utime(live, (hour_ago, hour_ago))
        assert isinstance(decoded_images(files[:2], 8, cache=c)[0], np.memmap)
        assert live.exists()                                            # its fill is still at work
    finally: p.kill(); p.wait()
    decoded_images(files[:2], 8, cache=c)                               # the fill killed: a later read removes its file
    assert not live.exists()


def test_a_set_larger_than_the_memory_is_refused_before_decoding(voc, voc_appendix, tmp_path, monkeypatch):
    """VOC-MLT at a size whose decoded set does not fit in the memory available (here Linux is made to say 0.2 GB) is refused
    before any image is decoded, naming the set, the size, the bytes, the memory and the fix; nothing is cached. It filled
    one array page by page until the kernel killed the process, minutes in, with no message (`stitchup_train --dataset voc
    --size 2000`: 55 GB for the test set)."""
    from stitchup_nb.appendix import voc_mlt
    meminfo = tmp_path/'meminfo'
    meminfo.write_text('MemTotal:       16384000 kB\nMemFree:          102400 kB\nMemAvailable:     209715 kB\nBuffers: 1 kB\n')
    real = getattr(images, 'memory_room', None)
    monkeypatch.setattr(images, 'memory_room', lambda nbytes: real(nbytes, meminfo), raising=False)
    decoded = []
    monkeypatch.setattr(images, 'load_image', lambda p, size: decoded.append(p) or np.zeros((size, size, 3), np.uint8))
    with pytest.raises(ValueError) as e: voc_mlt(voc['root'], voc_appendix, size=4000, cache=tmp_path/'c')
    assert str(e.value) == ("cannot decode VOC-MLT train and VOC-MLT test at size 4000: 12 images of 4000×4000×3 bytes do not fit "
                            f"in memory: they take 0.5 GB and this machine has 0.2 GB of memory available, as MemAvailable in {meminfo} says; pass a "
                            "smaller --size, or decode on a machine with more memory free")
    assert decoded == [] and not (tmp_path/'c').exists()
    train, _ = voc_mlt(voc['root'], voc_appendix, size=64, cache=tmp_path/'c')      # a size that fits: decoded and kept
    assert train.items.shape == (10, 64, 64, 3) and len(decoded) > 10 and (tmp_path/'c').is_dir()


def test_the_memory_is_read_from_linux_and_not_guessed_elsewhere(tmp_path):
    "`memory_room` reads MemAvailable (kB); where there is no such line or file (another system) it refuses nothing."
    if os.path.exists('/proc/meminfo'): assert images.memory_room(1) is None and images.memory_room(2**60) is not None
    (tmp_path/'old').write_text('MemTotal: 1024 kB\nMemFree: 512 kB\n')      # a kernel before 3.14 has no MemAvailable
    assert images.memory_room(2**60, tmp_path/'old') is None and images.memory_room(2**60, tmp_path/'none') is None
    (tmp_path/'m').write_text('MemAvailable:       1024 kB\n')
    assert images.memory_room(2**20, tmp_path/'m') is None and '0.0 GB of memory available' in images.memory_room(2**20 + 1, tmp_path/'m')


def test_a_set_that_fits_in_memory_and_swap_together_is_not_refused(files, tmp_path, monkeypatch):
    """The kernel fills the swap before it kills a process, so a set larger than MemAvailable that fits with SwapFree decoded
    (slowly) before the memory check: it is decoded still; one larger than both is refused, naming both. MemAvailable alone
    refused it."""
    meminfo = tmp_path/'meminfo'        # 1 MB available, 8 MB of swap free
    meminfo.write_text('MemAvailable:       1024 kB\nSwapTotal:      16384 kB\nSwapFree:        8192 kB\n')
    real = images.memory_room
    monkeypatch.setattr(images, 'memory_room', lambda nbytes: real(nbytes, meminfo))
    n = 5 * 2**20 // (64 * 64 * 3)      # 5 MB of 64 px images: more than the memory, less than memory and swap
    assert decoded_images([files[0]] * n, 64, cache=False)[0].shape == (n, 64, 64, 3)
    with pytest.raises(ValueError, match=r'of memory available and 0\.0 GB of swap free, as MemAvailable and SwapFree in .* say'):
        decode_images([files[0]] * (2 * n), 64)     # 10 MB: more than both


@pytest.mark.filterwarnings('ignore:.*have no objects')
@pytest.mark.parametrize('bench', ['voc', 'coco'])
def test_a_benchmark_asks_for_both_sets_before_decoding_either(bench, request, tmp_path, monkeypatch):
    """voc_mlt/coco_mlt where the training set fits in the memory available and so does the test set, but not the two together
    (the first stays in memory while the second decodes): refused before either is decoded, naming both. Each set was
    checked alone, so the two decoded (on a real machine, the second was refused or killed after minutes on the first).
    A set already in the cache is memory-mapped and counts for nothing."""
    from stitchup_nb.appendix import coco_mlt, voc_mlt
    fx, app = request.getfixturevalue(bench), request.getfixturevalue(f'{bench}_appendix')
    load = voc_mlt if bench == 'voc' else coco_mlt
    n_test = len(load(fx['root'], app, size=None)[1])
    per = 64 * 64 * 3
    meminfo = tmp_path/'meminfo'        # room for the 10 training images and a little more, not for the test set besides
    meminfo.write_text(f'MemAvailable: {(10 * per + per // 2) // 1024} kB\n')
    assert n_test * per < 10 * per      # each set fits alone
    real = images.memory_room
    monkeypatch.setattr(images, 'memory_room', lambda nbytes: real(nbytes, meminfo))
    decoded = []
    monkeypatch.setattr(images, 'load_image', lambda p, size: decoded.append(p) or np.zeros((size, size, 3), np.uint8))
    with pytest.raises(ValueError) as e: load(fx['root'], app, size=64, cache=tmp_path/'c')
    name = 'VOC-MLT' if bench == 'voc' else 'COCO-MLT'
    assert f'cannot decode {name} train and {name} test at size 64: {10 + n_test} images' in str(e.value), str(e.value)
    assert decoded == [] and not (tmp_path/'c').exists()
    monkeypatch.setattr(images, 'memory_room', lambda nbytes: None)
    load(fx['root'], app, size=64, cache=tmp_path/'c')                              # both kept
    monkeypatch.setattr(images, 'memory_room', lambda nbytes: real(nbytes, meminfo))
    train, test = load(fx['root'], app, size=64, cache=tmp_path/'c')                # both in the cache: nothing refused
    assert train.items.shape == (10, 64, 64, 3) and len(test) == n_test


def test_the_memory_refusal_names_size_as_its_reader_passes_it(voc, voc_appendix, tmp_path, monkeypatch):
    """The refusal's fix is the flag under a console script (`--size`) and the option to the training's Python entry point
    (`build_learner`, `in_python_words`: `size`), as every message of the kit; it said both to each ('(`size`; the console
    scripts' --size)')."""
    from stitchup_nb import train
    from stitchup_nb.words import cli_words
    meminfo = tmp_path/'meminfo'
    meminfo.write_text('MemAvailable:          1 kB\n')
    real = images.memory_room
    monkeypatch.setattr(images, 'memory_room', lambda nbytes: real(nbytes, meminfo))
    monkeypatch.setenv('STITCHUP_CACHE', str(tmp_path/'cache'))
    cfg = train.train_config(dataset='voc', data_root=str(voc['root']), appendix=str(voc_appendix), size=64, work_dir=None)
    with pytest.raises(ValueError) as e: train.build_learner(cfg)
    assert 'do not fit in memory' in str(e.value) and str(e.value).endswith('; pass a smaller `size`, or decode on a machine with more memory free')
    with cli_words(), pytest.raises(ValueError) as e: train.build_learner(cfg)
    assert str(e.value).endswith('; pass a smaller --size, or decode on a machine with more memory free'), str(e.value)
