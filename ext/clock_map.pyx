def hello(double x):
    return x * 2
