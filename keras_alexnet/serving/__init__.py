"""A trained AlexNet put to use: loaded, exported and served, asked, and measured.

trained_model    the trained model as the package keeps it, and its one loader
export           the versioned SavedModel for TF Serving (and other formats beside it)
portable_export  ONNX and LiteRT beside the SavedModel
onnx_export      the ONNX graph, written operator by operator
quantization     int8 fully connected layers
prediction       classifying image files, locally or through TF Serving
evaluation       top-1 and top-5 error: centre crop, ten crops, ensembles
"""
