"""Training recipes of the registered families, as data (``ModelInfo.recipe(kind)`` reads them).

Each entry is a plain dict of :class:`keras_cnns.training.Recipe` fields with the source it comes
from; the training package turns it into a ``Recipe`` and contains no family name. A model's
``"paper"`` recipe is the first entry of :data:`PAPER_RECIPES` whose name pattern (fnmatch)
matches the registered name, else the entry of its family; ``"default"`` is the library's recipe
for short runs on small data (:data:`DEFAULT_RECIPE`, measured on the embedded digits), unless
:data:`DEFAULT_RECIPES` names another for the model.

Epoch counts are converted from the papers' iteration counts at their batch size where the paper
counts iterations (the conversion is in the ``source``). Weight decay is applied as Keras'
decoupled ``weight_decay`` (for plain SGD equal to the papers' L2 term up to the momentum
buffer's share of it).
"""

from __future__ import annotations

import fnmatch
from typing import Any, Dict, Optional, Tuple

__all__ = ["DEFAULT_RECIPE", "PAPER_RECIPES", "RECIPES", "recipe_for"]

#: The library's default: what ``keras-cnns train`` uses on the embedded digits (see README).
DEFAULT_RECIPE: Dict[str, Any] = dict(
    optimizer="adam", learning_rate=1e-3, batch_size=64, epochs=30, schedule="poly",
    poly_power=1.0, warmup_epochs=2, weight_decay=0.0,
    source="keras_cnns: Adam 1e-3, 2-epoch linear warm-up, poly (power 1) decay to 0, batch 64, "
           "30 epochs; measured 0.978-0.989 held-out accuracy for SqueezeNet 1.1 with simple "
           "bypass on the digits (README). The papers' SGD recipes are tuned for ImageNet-scale "
           "runs and do not train SqueezeNet with bypass on 1.4k images (the keras_cnns.training "
           "package docstring).",
)

_CIFAR_RESNET = dict(
    optimizer="sgd", learning_rate=0.1, momentum=0.9, weight_decay=1e-4, batch_size=128,
    epochs=182, schedule="step", milestones=(0.5, 0.75), gamma=0.1, augment=True,
    source="He et al. 2016, 'Deep Residual Learning', Sec. 4.2: SGD 0.1, momentum 0.9, weight "
           "decay 1e-4, batch 128, divided by 10 at 32k and 48k iterations, stop at 64k "
           "(= 182 epochs of the 45k/5k split); pad 4, random 32x32 crop, flip",
)

#: name pattern or family -> recipe fields (first matching pattern wins, then the family).
PAPER_RECIPES: Tuple[Tuple[str, Dict[str, Any]], ...] = (
    ("resnet110", dict(_CIFAR_RESNET, warmup_epochs=1.0, source=_CIFAR_RESNET["source"] +
                       "; ResNet-110/1202 warm up (0.01 for ~400 iterations; here 1 linear epoch)")),
    ("resnet1202", dict(_CIFAR_RESNET, warmup_epochs=1.0, source=_CIFAR_RESNET["source"] +
                        "; ResNet-110/1202 warm up (0.01 for ~400 iterations; here 1 linear epoch)")),
    ("resnet20", _CIFAR_RESNET), ("resnet32", _CIFAR_RESNET), ("resnet44", _CIFAR_RESNET),
    ("resnet56", _CIFAR_RESNET),
    ("preact_resnet*", dict(_CIFAR_RESNET, warmup_epochs=1.0,
                            source="He et al. 2016, 'Identity Mappings in Deep Residual Networks',"
                                   " Sec. 4: the CIFAR recipe of 'Deep Residual Learning' (0.1, "
                                   "/10 at 32k and 48k of 64k iterations, batch 128, wd 1e-4), "
                                   "0.01 warm-up for the first 400 iterations (here 1 epoch)")),
    ("wrn_*", dict(optimizer="sgd", learning_rate=0.1, momentum=0.9, nesterov=True,
                   weight_decay=5e-4, batch_size=128, epochs=200, schedule="step",
                   milestones=(0.3, 0.6, 0.8), gamma=0.2, augment=True,
                   source="Zagoruyko & Komodakis 2016, 'Wide Residual Networks', Sec. 3: SGD "
                          "with Nesterov momentum 0.9, lr 0.1 divided by 5 at epochs 60, 120, "
                          "160 of 200, weight decay 5e-4, batch 128")),
    ("nin", dict(optimizer="sgd", learning_rate=0.1, momentum=0.9, weight_decay=1e-4,
                 batch_size=128, epochs=182, schedule="step", milestones=(0.5, 0.75), gamma=0.1,
                 augment=True,
                 source="Lin et al. 2014, 'Network in Network', Sec. 4.1 follows Krizhevsky's "
                        "protocol (lr divided by 10 on plateaus, batch 128) without listing its "
                        "values; here the CIFAR ResNet schedule")),
    ("ResNet", dict(optimizer="sgd", learning_rate=0.1, momentum=0.9, weight_decay=1e-4,
                    batch_size=256, epochs=90, schedule="step", milestones=(1 / 3, 2 / 3),
                    gamma=0.1, augment=True,
                    source="He et al. 2016, Sec. 3.4: SGD 0.1, momentum 0.9, weight decay 1e-4, "
                           "batch 256, /10 on plateaus; torchvision's reference: 90 epochs, /10 "
                           "at 30 and 60; random-resized crop and flip")),
    ("ResNetV2", "ResNet"), ("ResNeXt", "ResNet"), ("WideResNet", "ResNet"),
    ("VGG", dict(optimizer="sgd", learning_rate=0.01, momentum=0.9, weight_decay=5e-4,
                 batch_size=256, epochs=74, schedule="step", milestones=(0.4, 0.65, 0.9),
                 gamma=0.1, augment=True,
                 source="Simonyan & Zisserman 2015, Sec. 3.1: SGD, batch 256, momentum 0.9, "
                        "weight decay 5e-4, lr 0.01 divided by 10 three times (on plateaus), 74 "
                        "epochs")),
    ("AlexNet", dict(optimizer="sgd", learning_rate=0.01, momentum=0.9, weight_decay=5e-4,
                     batch_size=128, epochs=90, schedule="step", milestones=(1 / 3, 2 / 3, 8 / 9),
                     gamma=0.1, augment=True,
                     source="Krizhevsky et al. 2012, Sec. 5: SGD, batch 128, momentum 0.9, weight "
                            "decay 5e-4, lr 0.01 divided by 10 three times, ~90 epochs")),
    ("ZFNet", dict(optimizer="sgd", learning_rate=0.01, momentum=0.9, weight_decay=5e-4,
                   batch_size=128, epochs=70, schedule="step", milestones=(0.5, 0.75), gamma=0.1,
                   augment=True,
                   source="Zeiler & Fergus 2014, Sec. 3: SGD, batch 128, lr 0.01, momentum 0.9, "
                          "lr annealed on plateaus, 70 epochs")),
    ("SqueezeNet", dict(optimizer="sgd", learning_rate=0.04, momentum=0.9, weight_decay=2e-4,
                        batch_size=512, epochs=68, schedule="poly", poly_power=1.0,
                        augment=True,
                        source="Iandola et al. 2016, the released Caffe solver.prototxt: base_lr "
                               "0.04, lr_policy poly power 1, momentum 0.9, weight_decay 2e-4, "
                               "batch 32 x iter_size 16 = 512, 170k iterations (= 68 epochs)")),
    ("MobileNet", dict(optimizer="rmsprop", learning_rate=0.045, rmsprop_rho=0.9, epsilon=1.0,
                       momentum=0.0, weight_decay=4e-5, batch_size=32, epochs=100,
                       schedule="exponential", decay_rate=0.94, decay_epochs=2.0,
                       augment=True,
                       source="Howard et al. 2017, Sec. 4: RMSProp with asynchronous gradient "
                              "descent as in Inception-v3 (Szegedy et al. 2016, Sec. 8: decay "
                              "0.9, epsilon 1.0, lr 0.045 x 0.94 every 2 epochs, batch 32, 100 "
                              "epochs); little weight decay (TF-slim: 4e-5)")),
    ("MobileNetV2", dict(optimizer="rmsprop", learning_rate=0.045, rmsprop_rho=0.9, momentum=0.9,
                         epsilon=1.0, weight_decay=4e-5, batch_size=1536, epochs=300,
                         schedule="exponential", decay_rate=0.98, decay_epochs=1.0,
                         augment=True,
                         source="Sandler et al. 2018, Sec. 6.1: RMSProp decay 0.9 and momentum "
                                "0.9, weight decay 4e-5, lr 0.045 x 0.98 per epoch, 16 GPUs x 96 "
                                "images; the epoch count is not in the paper (300: torchvision's "
                                "reference)")),
    ("FBNet", "MobileNetV2"),
    ("MobileNetV3", dict(optimizer="rmsprop", learning_rate=0.1, rmsprop_rho=0.9, momentum=0.9,
                         epsilon=1.0, weight_decay=1e-5, batch_size=4096, epochs=600,
                         schedule="exponential", decay_rate=0.99, decay_epochs=3.0,
                         augment=True,
                         source="Howard et al. 2019, Sec. 6.1: RMSProp momentum 0.9, lr 0.1, "
                                "batch 4096, lr decay 0.01 every 3 epochs (x0.99), weight decay "
                                "1e-5; 600 epochs: torchvision's reference")),
    ("EfficientNet", dict(optimizer="rmsprop", learning_rate=0.256, rmsprop_rho=0.9,
                          momentum=0.9, epsilon=1e-3, weight_decay=1e-5, batch_size=4096,
                          epochs=350, schedule="exponential", decay_rate=0.97, decay_epochs=2.4,
                          warmup_epochs=5, label_smoothing=0.1, augment=True,
                          source="Tan & Le 2019, Sec. 5.2: RMSProp decay 0.9 momentum 0.9, "
                                 "weight decay 1e-5, lr 0.256 x 0.97 every 2.4 epochs; the "
                                 "official TPU code: batch 4096, 350 epochs, 5 warm-up epochs, "
                                 "label smoothing 0.1")),
    ("ShuffleNet", dict(optimizer="sgd", learning_rate=0.5, momentum=0.9, weight_decay=4e-5,
                        batch_size=1024, epochs=240, schedule="poly", poly_power=1.0,
                        augment=True,
                        source="Zhang et al. 2018, Sec. 4: weight decay 4e-5, linear-decay lr "
                               "from 0.5 to 0, batch 1024, 3e5 iterations (= 240 epochs); SGD "
                               "momentum 0.9 as in megvii's release")),
    ("ShuffleNetV2", "ShuffleNet"),
    # GoogLeNet and BN-Inception (googlenet.py)
    ("GoogLeNet", dict(optimizer="sgd", learning_rate=0.01, momentum=0.9, weight_decay=2e-4,
                       batch_size=32, epochs=250, schedule="exponential", decay_rate=0.96,
                       decay_epochs=8.0, augment=True,
                       source="Szegedy et al. 2015, Sec. 6: asynchronous SGD with momentum 0.9, "
                              "learning rate decreased by 4% every 8 epochs, Polyak averaging "
                              "of the final model; auxiliary losses weighted 0.3 (Sec. 5, the "
                              "model's outputs). The paper gives no initial rate, batch, weight "
                              "decay or length: those are the BVLC Caffe replication's "
                              "(models/bvlc_googlenet/solver.prototxt: base_lr 0.01, x0.96 "
                              "every 320k iterations = 8 epochs at batch 32, weight_decay 2e-4; "
                              "its readme: 250 epochs). Not reproducible here: the asynchronous "
                              "DistBelief training, Polyak averaging (no Recipe field) and the "
                              "paper's photometric and scale/aspect-ratio augmentation")),
    ("BN-Inception", dict(optimizer="sgd", learning_rate=0.0075, momentum=0.9,
                          weight_decay=4e-5, batch_size=32, epochs=53, schedule="exponential",
                          decay_rate=0.96, decay_epochs=8.0 / 6.0, augment=True,
                          source="Ioffe & Szegedy 2015, Sec. 4.2: SGD with momentum, batch 32; "
                                 "Sec. 4.2.1/4.2.2 (BN-x5): initial rate 0.0015 x 5 = 0.0075, "
                                 "no dropout (the model's default), L2 weight regularisation "
                                 "reduced 5x, learning-rate decay 6x faster than Inception's, "
                                 "no LRN, less photometric distortion. Not given in the paper "
                                 "and taken here: momentum 0.9, GoogLeNet's 4% decay (every "
                                 "8 / 6 epochs), weight decay 4e-5 (the BVLC GoogLeNet "
                                 "replication's 2e-4 reduced 5x), 53 epochs (the 2.1e6 steps at batch 32 in which "
                                 "BN-x5 reached Inception's accuracy, Fig. 3)")),
    # Inception-v3 and Xception (inception_v3.py, xception.py)
    ("Inception-v3", dict(optimizer="rmsprop", learning_rate=0.045, rmsprop_rho=0.9,
                          momentum=0.0, epsilon=1.0, weight_decay=4e-5, batch_size=32,
                          epochs=100, schedule="exponential", decay_rate=0.94, decay_epochs=2.0,
                          label_smoothing=0.1, augment=True,
                          source="Szegedy et al. 2016, 'Rethinking the Inception Architecture',"
                                 " Sec. 8: RMSProp decay 0.9, epsilon 1.0, lr 0.045 x 0.94 every"
                                 " 2 epochs, batch 32 on each of 50 replicas, 100 epochs; Sec. 7:"
                                 " label smoothing 0.1; weight decay 4e-5 from TF-slim's "
                                 "inception_v3_arg_scope; the paper's gradient clipping at 2.0 "
                                 "has no Recipe field and is not applied")),
    ("Xception", dict(optimizer="sgd", learning_rate=0.045, momentum=0.9, weight_decay=1e-5,
                      batch_size=32, epochs=100, schedule="exponential", decay_rate=0.94,
                      decay_epochs=2.0, augment=True,
                      source="Chollet 2017, Sec. 4.2-4.3: SGD momentum 0.9, lr 0.045 x 0.94 "
                             "every 2 epochs, weight decay 1e-5, dropout 0.5 before the "
                             "classifier (build with dropout=0.5), no auxiliary tower; batch "
                             "size and epochs are not given (here Inception-v3's 32 and 100)")),
    # NASNet-A (nasnet.py)
    ("nasnet_large", dict(optimizer="rmsprop", learning_rate=1.5, rmsprop_rho=0.9, momentum=0.9,
                          epsilon=1.0, weight_decay=5e-5, batch_size=1600, epochs=312,
                          schedule="exponential", decay_rate=0.97, decay_epochs=2.4,
                          label_smoothing=0.1, augment=True,
                          source="TF-slim nets/nasnet/nasnet.py training notes for the large "
                                 "ImageNet model: batch 16 per replica x 100 synchronous "
                                 "replicas, lr 0.015 x 100, x0.97 every 2.4 epochs, label "
                                 "smoothing 0.1, auxiliary loss weight 0.4, gradient norm "
                                 "clipped at 10 (not applied here); 250k steps "
                                 "(total_training_steps, = 312 epochs at batch 1600); weight "
                                 "decay 5e-5 (nasnet_large_arg_scope); RMSProp decay 0.9, "
                                 "momentum 0.9, epsilon 1.0 (train_image_classifier.py "
                                 "defaults). Its drop-path keep 0.7 and dense dropout 0.5 are "
                                 "model knobs: NASNet(drop_path=0.3, dropout=0.5)")),
    ("NASNet-A", dict(optimizer="rmsprop", learning_rate=2.0, rmsprop_rho=0.9, momentum=0.9,
                      epsilon=1.0, weight_decay=4e-5, batch_size=1600, epochs=312,
                      schedule="exponential", decay_rate=0.97, decay_epochs=2.4,
                      label_smoothing=0.1, augment=True,
                      source="TF-slim nets/nasnet/nasnet.py training notes for the mobile "
                             "ImageNet model: batch 32 per replica x 50 synchronous replicas, "
                             "lr 0.04 x 50, x0.97 every 2.4 epochs, label smoothing 0.1, "
                             "auxiliary loss weight 0.4, gradient norm clipped at 10 (not "
                             "applied here); 250k steps (total_training_steps, = 312 epochs at "
                             "batch 1600); weight decay 4e-5 (nasnet_mobile_arg_scope); RMSProp "
                             "decay 0.9, momentum 0.9, epsilon 1.0 (train_image_classifier.py "
                             "defaults). Its dense dropout 0.5 is a model knob: "
                             "NASNet(dropout=0.5)")),
    # FractalNet (fractalnet.py)
    ("fractal_of_fractalnet", dict(optimizer="sgd", learning_rate=0.02, momentum=0.9,
                                   weight_decay=1e-4, batch_size=25, epochs=50, schedule="step",
                                   milestones=(0.5, 0.75, 0.875), gamma=0.1, augment=True,
                                   source="iPhysicist/CNNDesignPatterns (Smith & Topin 2016) "
                                          "solver.prototxt + FoF.prototxt: SGD 0.02, momentum "
                                          "0.9, weight decay 1e-4, /10 at 50k, 75k, 87.5k of "
                                          "100k iterations at batch 25 (= 50 CIFAR epochs), "
                                          "mirrored images; freeze-drop-path is the "
                                          "FreezeDropPath callback")),
    ("fractalnet34", dict(optimizer="sgd", learning_rate=0.001, momentum=0.9, weight_decay=0.0,
                          batch_size=32, epochs=70, schedule="step",
                          milestones=(0.5, 0.75, 0.875, 0.9375), gamma=0.1, augment=True,
                          source="Larsson et al. 2017, Sec. 4: ImageNet 70 epochs, SGD momentum "
                                 "0.9, batch 32, lr 0.001 divided by 10 each time the remaining "
                                 "epochs halve (the CIFAR rule; the paper gives no other for "
                                 "ImageNet); local drop-path 0.15 (a model knob); no weight "
                                 "decay is stated")),
    ("FractalNet", dict(optimizer="sgd", learning_rate=0.02, momentum=0.9, weight_decay=1e-4,
                        batch_size=100, epochs=400, schedule="step",
                        milestones=(0.5, 0.75, 0.875, 0.9375), gamma=0.1, augment=True,
                        source="Larsson et al. 2017, Sec. 4: SGD momentum 0.9, batch 100, 400 "
                               "epochs on CIFAR, lr 0.02 divided by 10 each time the number of "
                               "remaining epochs halves (at 200, 300, 350, 375); drop-path "
                               "(local 0.15, global on half the batches) and the optional "
                               "per-block dropout are model knobs. Weight decay is not stated "
                               "in the paper: 1e-4 from the Caffe solver of the authors' "
                               "follow-up replication (iPhysicist/CNNDesignPatterns "
                               "solver.prototxt: lr 0.02, /10 at 50%, 75%, 87.5%)")),
    # RevNet and i-RevNet (revnet.py, irevnet.py)
    ("revnet*", dict(optimizer="sgd", learning_rate=0.1, momentum=0.9, weight_decay=2e-4,
                     batch_size=100, epochs=160, schedule="step", milestones=(0.5, 0.75),
                     gamma=0.1, augment=True,
                     source="Gomez et al. 2017, 'The Reversible Residual Network', Sec. 5 / "
                            "renmengye/revnet-public resnet/configs/cifar_configs.py: SGD "
                            "momentum 0.9, lr 0.1 (base_learn_rate) then 0.01 and 0.001 at 40k "
                            "and 60k (lr_decay_steps, lr_list) of 80k iterations "
                            "(max_train_iter) at batch 100 (= 160 epochs of the 50k CIFAR "
                            "training images), weight decay 2e-4 on the kernels; pad 4, random "
                            "32x32 crop, flip (resnet/data/cifar_input.py)")),
    ("irevnet_cifar", dict(optimizer="sgd", learning_rate=0.1, momentum=0.9, weight_decay=5e-4,
                           batch_size=128, epochs=200, schedule="step",
                           milestones=(0.3, 0.6, 0.8), gamma=0.2, augment=True,
                           source="jhjacobsen/pytorch-i-revnet CIFAR_main.py and "
                                  "models/utils_cifar.py: SGD momentum 0.9, lr 0.1 x 0.2 after "
                                  "epochs 60, 120 and 160 of 200, weight decay 5e-4, batch 128; "
                                  "random 32x32 crop of the 4-padded image, horizontal flip; "
                                  "dropout 0.1 in the blocks is the model's (irevnet_cifar)")),
    ("i-RevNet", dict(optimizer="sgd", learning_rate=0.1, momentum=0.9, weight_decay=1e-4,
                      batch_size=256, epochs=128, schedule="step", milestones=(0.25, 0.5, 0.75),
                      gamma=0.1, augment=True,
                      source="jhjacobsen/pytorch-i-revnet ILSVRC_main.py: SGD momentum 0.9, lr "
                             "0.1 divided by 10 every 32 epochs, 128 epochs, weight decay 1e-4, "
                             "batch 256 (the paper, Sec. 4.1: 600k iterations at batch 256, lr "
                             "/10 every 160k, i.e. about 120 epochs, /10 every 32)")),
)

#: Named recipes selectable with ``recipe="NAME"`` (``--recipe NAME``) for any model.
RECIPES: Dict[str, Dict[str, Any]] = {
    "default": DEFAULT_RECIPE,
    "cifar_resnet": _CIFAR_RESNET,
}
for _key, _value in PAPER_RECIPES:
    if isinstance(_value, dict) and not any(c in _key for c in "*?["):
        RECIPES.setdefault(_key.lower(), _value)

#: The default with twice the epochs and the dataset's augmentation (the digits: one-pixel
#: shifts), for MobileNet v1, which the plain default leaves over-fitted and fragile.
RECIPES["small_data_mobilenet"] = dict(
    DEFAULT_RECIPE, epochs=60, augment=True,
    source="keras_cnns: the default recipe (Adam 1e-3, 2-epoch warm-up, poly decay, batch 64) "
           "for 60 epochs with the dataset's augmentation; measured for MobileNet 0.5 on the "
           "digits (README): held-out 0.9806 and int8 TFLite top-1 agreement 1.0000 with Keras, "
           "where 30 epochs without augmentation gave 0.9139 and 0.9417 (train 1.0000: an "
           "over-fitted network whose held-out decisions int8 rounding flips)",
)

#: model name pattern -> recipe name for ``"default"`` where the library default does not fit.
DEFAULT_RECIPES: Tuple[Tuple[str, str], ...] = (
    ("mobilenet", "small_data_mobilenet"),
    ("mobilenet_[0-9]*", "small_data_mobilenet"),
)


def _resolve(value, family_table) -> Dict[str, Any]:
    while isinstance(value, str):  # an alias: another family's entry
        value = family_table[value]
    return dict(value)


def recipe_for(name: str, family: str, kind: str = "paper") -> Optional[Dict[str, Any]]:
    """The recipe fields of ``kind`` (``"paper"`` or ``"default"``) for a registered model, or
    ``None`` when the paper recipe of its family is not recorded."""
    table = dict(PAPER_RECIPES)
    if kind == "default":
        for pattern, recipe_name in DEFAULT_RECIPES:
            if fnmatch.fnmatchcase(name, pattern):
                return dict(RECIPES[recipe_name])
        return dict(DEFAULT_RECIPE)
    for pattern, value in PAPER_RECIPES:
        if pattern == pattern.lower() and fnmatch.fnmatchcase(name, pattern):
            return _resolve(value, table)
    if family in table:
        return _resolve(table[family], table)
    return None
