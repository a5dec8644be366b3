"""Frames in, int8 model input out: the preprocessing a model's meta.json describes.

The app builds one Pipeline from the `preprocessing` section of the model's meta.json and
pushes every sampled frame into it; when push() returns True, `input` (a bytearray of
int8 codes) holds the next window's model input, ready to copy into the engine's input
tensor. The work happens in tsnode.sensors.features (.anomaly, .zscore for their kinds), the
same code training ran, so the node's inputs equal the ones in the model's heldout.npz
(tests/node/test_features.py).

Kinds (meta.json `preprocessing.kind`):
  affine_window  per-channel affine map of every sample of the window (activity);
  zscore_window  the window standardized by its own mean and std (energy);
  band_energies  log2 FFT band energies of a 1-channel window, then affine (anomaly).

Memory: the window ring, one window copy and the input are allocated here, once;
push() allocates nothing for affine_window (the others allocate a few small ints).
"""

from array import array

from tsnode.sensors import features as F

KINDS = ("affine_window", "zscore_window", "band_energies")


class Pipeline:
    def __init__(self, pre):
        kind = pre["kind"]
        if kind not in KINDS:
            raise ValueError("unknown preprocessing kind %r (this node knows %s)"
                             % (kind, ", ".join(KINDS)))
        self.kind = kind
        self.n_channels = pre["n_channels"]
        self.window_frames = pre["window"]
        self.windower = F.Windower(self.n_channels, pre["window"], pre["stride"])
        self._win = array("h", bytes(2 * self.n_channels * pre["window"]))
        self.affine = None
        if kind == "zscore_window":
            from tsnode.sensors.zscore import zscore_quantize  # only this kind loads it

            self._zscore = zscore_quantize
            z = pre["zscore"]
            self._inv_q8 = z["inv_scale_q8"]
            self._zp = z["zero_point"]
            n_in = pre["window"]
        else:
            a = pre["affine"]
            if a["shift"] != F.AFFINE_SHIFT:
                raise ValueError("affine shift %d, this node computes with %d"
                                 % (a["shift"], F.AFFINE_SHIFT))
            self.affine = F.Affine(a["offsets"], a["multipliers"], a["zero_point"])
            n_in = self.n_channels * pre["window"]
        if kind == "band_energies":
            from tsnode.sensors.anomaly import BandEnergies  # the FFT: only this kind loads it

            self.bands = BandEnergies(pre["band_edges"])
            self._energies = array("h", bytes(2 * self.bands.n_bands))
            n_in = self.bands.n_bands
        self.input = bytearray(n_in)
        self.windows = 0  # windows produced since creation

    def reset(self):
        """Start windows afresh (a new recording, or after a gap in sampling)."""
        self.windower.reset()

    def push(self, frame):
        """Add one frame; True when `input` holds a new window's int8 codes."""
        if not self.windower.push(frame):
            return False
        win = self.windower.window(self._win)
        if self.kind == "affine_window":
            self.affine.quantize(win, self.window_frames, self.input)
        elif self.kind == "zscore_window":
            self._zscore(win, self.window_frames, self._inv_q8, self._zp, self.input)
        else:
            self.bands.compute(win, self._energies)
            self.affine.quantize(self._energies, 1, self.input)
        self.windows += 1
        return True
