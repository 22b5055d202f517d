#!/usr/bin/env python3
"""The plain OpenCV-Python pipeline that `checkpoint-bench compare` measures the agent against.

What a competent engineer would write with OpenCV alone: read the video with cv2.VideoCapture, scale each
frame so its long side is 960 px, detect faces with cv2.FaceDetectorYN (YuNet), and embed every detected face
with cv2.FaceRecognizerSF (SFace: alignCrop + feature). `--no-embed` stops after detection; `--people` also runs
NanoDet-Plus through cv2.dnn on every frame (letterbox to 416, the OpenCV Zoo demo's post-processing), as the
agent's people mode does. Every frame is analysed; nothing is tracked or counted.

A measurement tool, not a dependency of the product: OpenCV comes from the PyPI `opencv-python-headless` wheel
in a venv that `checkpoint-bench compare` creates. Prints one JSON object on stdout.
"""

import argparse
import json
import sys
import time

import cv2
import numpy as np

LONG_SIDE = 960
NANODET_INPUT = 416
NANODET_MEAN = np.array([103.53, 116.28, 123.675], dtype=np.float32)
NANODET_STD = np.array([57.375, 57.12, 58.395], dtype=np.float32)
NANODET_STRIDES = (8, 16, 32)
NANODET_BINS = 8


class NanoDet:
    """NanoDet-Plus-m-1.5x 416 through cv2.dnn, post-processed as in OpenCV Zoo's nanodet.py."""

    def __init__(self, path, score=0.35, nms=0.6):
        self.net = cv2.dnn.readNet(path)
        self.score = score
        self.nms = nms
        self.anchors = []
        for s in NANODET_STRIDES:
            n = NANODET_INPUT // s
            ys, xs = np.mgrid[0:n, 0:n]
            cx = (xs.ravel() * s + 0.5 * (s - 1)).astype(np.float32)
            cy = (ys.ravel() * s + 0.5 * (s - 1)).astype(np.float32)
            self.anchors.append((cx, cy, s))
        self.project = np.arange(NANODET_BINS, dtype=np.float32)

    def letterbox(self, img):
        h, w = img.shape[:2]
        if w >= h:
            nw, nh = NANODET_INPUT, max(1, int(NANODET_INPUT * h / w))
        else:
            nw, nh = max(1, int(NANODET_INPUT * w / h)), NANODET_INPUT
        left, top = (NANODET_INPUT - nw) // 2, (NANODET_INPUT - nh) // 2
        canvas = np.zeros((NANODET_INPUT, NANODET_INPUT, 3), dtype=np.uint8)
        canvas[top:top + nh, left:left + nw] = cv2.resize(img, (nw, nh))
        return canvas, left, top, w / nw, h / nh

    def detect(self, img):
        canvas, left, top, sx, sy = self.letterbox(img)
        blob = (canvas.astype(np.float32) - NANODET_MEAN) / NANODET_STD
        self.net.setInput(blob.transpose(2, 0, 1)[np.newaxis])
        outs = self.net.forward(self.net.getUnconnectedOutLayersNames())
        by_shape = {}
        for o in outs:
            by_shape[(o.shape[1], o.shape[2])] = o[0]
        boxes, scores = [], []
        for cx, cy, s in self.anchors:
            n = cx.size
            cls = by_shape[(n, 80)]
            dist = by_shape[(n, 4 * NANODET_BINS)]
            best = cls.argmax(axis=1)
            conf = cls[np.arange(n), best]
            keep = (best == 0) & (conf >= self.score)
            if not keep.any():
                continue
            d = dist[keep].reshape(-1, 4, NANODET_BINS)
            e = np.exp(d - d.max(axis=2, keepdims=True))
            side = (e / e.sum(axis=2, keepdims=True)) @ self.project * s
            x1 = np.clip(cx[keep] - side[:, 0], 0, NANODET_INPUT)
            y1 = np.clip(cy[keep] - side[:, 1], 0, NANODET_INPUT)
            x2 = np.clip(cx[keep] + side[:, 2], 0, NANODET_INPUT)
            y2 = np.clip(cy[keep] + side[:, 3], 0, NANODET_INPUT)
            for a, b, c, d_, sc in zip(x1, y1, x2, y2, conf[keep]):
                fx, fy = (a - left) * sx, (b - top) * sy
                boxes.append([float(fx), float(fy), float((c - a) * sx), float((d_ - b) * sy)])
                scores.append(float(sc))
        if not boxes:
            return []
        idx = cv2.dnn.NMSBoxes(boxes, scores, self.score, self.nms)
        return [boxes[i] for i in np.array(idx).ravel()]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("video")
    ap.add_argument("--yunet", required=True)
    ap.add_argument("--sface", required=True)
    ap.add_argument("--nanodet")
    ap.add_argument("--seconds", type=float, default=20.0, help="stop after this much video")
    ap.add_argument("--no-embed", action="store_true", help="detection only")
    ap.add_argument("--people", action="store_true", help="also NanoDet on every frame (needs --nanodet)")
    ap.add_argument("--threads", type=int, default=0, help="cv2.setNumThreads (0: OpenCV's default)")
    a = ap.parse_args()
    if a.threads > 0:
        cv2.setNumThreads(a.threads)
    if a.people and not a.nanodet:
        ap.error("--people needs --nanodet")

    cap = cv2.VideoCapture(a.video)
    if not cap.isOpened():
        print(json.dumps({"error": f"cannot open {a.video}"}))
        return 1
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    last = int(round(a.seconds * fps))
    detector = None
    recognizer = cv2.FaceRecognizerSF.create(a.sface, "")
    people = NanoDet(a.nanodet) if a.people else None

    frames = faces = persons = 0
    t0 = time.perf_counter()
    while frames < last:
        ok, frame = cap.read()
        if not ok:
            break
        h, w = frame.shape[:2]
        s = min(1.0, LONG_SIDE / max(w, h))
        small = cv2.resize(frame, (round(w * s), round(h * s))) if s < 1.0 else frame
        if detector is None:
            sh, sw = small.shape[:2]
            detector = cv2.FaceDetectorYN.create(a.yunet, "", (sw, sh), 0.6, 0.3, 5000)
        _, found = detector.detect(small)
        if found is not None:
            faces += len(found)
            if not a.no_embed:
                for f in found:
                    crop = recognizer.alignCrop(small, f)
                    recognizer.feature(crop)
        if people is not None:
            persons += len(people.detect(frame))
        frames += 1
    wall = time.perf_counter() - t0
    print(json.dumps({
        "frames": frames,
        "wall_s": wall,
        "fps": frames / wall if wall > 0 else 0.0,
        "faces": faces,
        "people": persons,
        "opencv": cv2.__version__,
        "threads": cv2.getNumThreads(),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
