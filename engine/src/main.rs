fn main() {
    eprintln!("floodgate: the serve command arrives with the data path");
}
