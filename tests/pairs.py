"""Model pairs shared by the method tests: every family as teacher and as student, at 32 px."""
import fofakd

SIZE = 32
INPUT_SIZE = (3, SIZE, SIZE)
# CNN, ViT, MLP-style, ConvNeXt and Swin, each as teacher and as student.
PAIRS = [
    ("convnext_atto", "deit_tiny_patch16_224"),
    ("vit_tiny_patch16_224", "resnet18"),
    ("resnet18", "mixer_s4_32"),
    ("resmlp_12_p4_32", "swin_tiny_patch4_window7_224"),
    ("swin_tiny_patch4_window7_224", "mobilenetv2_100"),
    ("mixer_s4_32", "convnext_atto"),
]


def make_model(name, num_classes=10):
    kwargs = {"patch_size": 4} if name.startswith(("vit", "deit")) else {}
    return fofakd.create_model(name, num_classes=num_classes, img_size=SIZE, **kwargs)
