// Dense matrix with row-major storage.
#include <iostream>
#include <vector>

namespace linalg {

/// A small dense matrix of doubles.
class Matrix {
  public:
    Matrix(std::size_t rows, std::size_t cols) : rows_(rows), cols_(cols), data_(rows * cols, 0.0) {}

    double &operator()(std::size_t r, std::size_t c) { return data_[r * cols_ + c]; }

    /* Matrix product; sizes are not checked. */
    Matrix operator*(const Matrix &o) const {
        Matrix out(rows_, o.cols_);
        for (std::size_t i = 0; i < rows_; ++i)
            for (std::size_t k = 0; k < cols_; ++k)
                for (std::size_t j = 0; j < o.cols_; ++j)
                    out.data_[i * o.cols_ + j] += data_[i * cols_ + k] * o.data_[k * o.cols_ + j];
        return out;
    }

  private:
    std::size_t rows_, cols_;
    std::vector<double> data_;
};

}  // namespace linalg

int main() {
    linalg::Matrix a(2, 2);
    a(0, 0) = 1; a(1, 1) = 2;
    std::cout << (a * a)(1, 1) << std::endl;  // 4
}
