#!/usr/bin/env python3
"""Checks a generated scene with YuNet, as the agent would see it: decodes DIR/scene.mp4 with gst-launch, runs
YuNet (score >= 0.6) on the frames a 10 fps analysis would take, and compares with DIR/truth.json: recall of
faces fully in the picture (IoU >= 0.4), unmatched detections, and what a naive nearest-centre tracker that
counts each track once would count (horizontal lines only).

    /tmp/venv/bin/python tools/yunet_check.py /tmp/scene [../../../shared]
"""
import collections
import json
import os
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lfw_face_table import YuNet  # noqa: E402


def iou(a, b):
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    i = max(0, x2 - x1) * max(0, y2 - y1)
    return i / (a[2] * a[3] + b[2] * b[3] - i)


def main():
    d = sys.argv[1]
    shared = sys.argv[2] if len(sys.argv) > 2 else "../../../shared"
    net = YuNet(os.path.join(shared, "models/face_detection_yunet_2026may.onnx"))
    t = json.load(open(os.path.join(d, "truth.json")))
    w, h, fps = t["width"], t["height"], t["fps"]
    stride = (w * 3 + 3) // 4 * 4
    want = {int(np.floor(i * fps / 10 + 0.5)) for i in range(int(t["frames"] * 10 / fps) + 1)}
    p = subprocess.Popen(["gst-launch-1.0", "-q", "filesrc", f"location={d}/scene.mp4", "!", "decodebin", "!",
                          "videoconvert", "!", "video/x-raw,format=RGB", "!", "fdsink", "fd=1"], stdout=subprocess.PIPE)
    ly = t["line"]["a"][1]
    stats, ious, false_pos, missed = collections.Counter(), [], [], []
    tracks, counts = [], collections.Counter()
    k = 0
    while True:
        buf = p.stdout.read(stride * h)
        if len(buf) < stride * h:
            break
        if k in want:
            img = np.frombuffer(buf, np.uint8).reshape(h, stride)[:, :w * 3].reshape(h, w, 3)
            dets = net.detect(img)
            used = set()
            for a in t["actors"]:
                if not a["first_frame"] <= k <= a["last_frame"]:
                    continue
                b = a["boxes"][k - a["first_frame"]]
                full = b[0] >= 0 and b[1] >= 0 and b[0] + b[2] <= w and b[1] + b[3] <= h
                best = max(((iou(b, dd[0]), j) for j, dd in enumerate(dets) if j not in used), default=(0, -1))
                if best[0] >= 0.4:
                    used.add(best[1])
                    ious.append(best[0])
                    stats["matched_full" if full else "matched_partial"] += 1
                else:
                    stats["missed_full" if full else "missed_partial"] += 1
                    if full:
                        missed.append((k, a["actor_id"], a["identity"]))
            false_pos += [(k, [round(float(x)) for x in dd[0]]) for j, dd in enumerate(dets) if j not in used]
            alive = [tr for tr in tracks if k - tr["last"] <= 8]
            taken = set()
            for dd in dets:
                c = (dd[0][0] + dd[0][2] / 2, dd[0][1] + dd[0][3] / 2)
                dist, bi = min(((np.hypot(c[0] - tr["c"][0], c[1] - tr["c"][1]), i)
                                for i, tr in enumerate(alive) if i not in taken), default=(1e9, -1))
                if dist < 60:
                    tr = alive[bi]
                    taken.add(bi)
                    tr["c"], tr["last"] = c, k
                    if not tr["counted"] and (c[1] > ly) != tr["origin"]:
                        tr["counted"] = True
                        counts["in" if c[1] > ly else "out"] += 1
                else:
                    tr = {"c": c, "last": k, "origin": c[1] > ly, "counted": False}
                    tracks.append(tr)
                    alive.append(tr)
                    taken.add(len(alive) - 1)
        k += 1
    p.wait()
    print(f"decoded {k} frames (truth {t['frames']}), analysed {len(want)}")
    print(dict(stats), f"IoU mean {np.mean(ious):.3f}")
    print("unmatched detections:", len(false_pos), false_pos[:10])
    print("missed full faces:", missed[:10])
    print("naive counter:", dict(counts), "truth:", t["totals"], "tracks:", len(tracks))


if __name__ == "__main__":
    main()
