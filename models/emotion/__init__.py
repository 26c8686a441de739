"""Windowed video emotion: Ekman-6 probabilities and valence/arousal from the picture, faces and sound.

    from cuecast.models.emotion.estimator import EmotionEstimator
    est = EmotionEstimator(EmotionConfig())       # loads the shipped FER weights when faces are on
    windows = est.process_frame(frame)            # every frame in order; returns the windows it completes
    est.process_audio(chunk); est.observe_cut(t)  # sound and scene boundaries, when there are any
    windows += est.flush()                        # at the end of the input

Modules: affect (picture features, Valdez & Mehrabian, Hanjalic & Xu), faces + fer_net (Haar detection,
the ported FER-2013 mini-Xception), audio (loudness, spectral centroid, onsets), fusion (fixed fusion and
the trainable torch head), va (EMSYNC's Ekman-6 -> valence/arousal table), estimator (windows, smoothing).
This package file imports nothing heavy: engine/config.py imports the config section through it.
"""
