"""The PASCAL VOC class list, in a module of its own: the demo generator (run by `fetch`) writes VOC-format data
with it, and importing it must not load the image decoder of `voc` (torchvision, and with it torch).
"""

# The 20 VOC classes in the devkit's (alphabetical) order; the label order of every VOC table.
VOC_CLASSES: tuple[str, ...] = (
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
)
