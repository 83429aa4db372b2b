"""Why a model predicted what it did: Captum's attribution methods on a checkpoint's model
(methods.py), a deletion test of whether the attributions are faithful (faithfulness.py), and the
pictures: a PNG grid for images, highlighted tokens for text (render.py)."""
