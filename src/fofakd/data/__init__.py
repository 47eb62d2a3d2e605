from .fashion_mnist import load_fashion_mnist
